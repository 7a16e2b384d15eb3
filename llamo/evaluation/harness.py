"""Evaluation runs: tasks and their data loaders, predictors, the resumable batched loop and the reports.

A run (`run_evaluation`) takes a task, its items and a predictor and writes into `output_dir`:

* `predictions.jsonl`: one JSON object per line, `{"id", "prompt", "prediction", "model"}`, appended and flushed
  after every batch. With `resume=True` (the default) items already answered there by the same model (the
  report's `model`, e.g. the checkpoint path) with the same prompt are not predicted again, so an interrupted run
  continues where it stopped, and a second checkpoint evaluated into the same folder gets its own answers, never
  the first one's; a truncated last line (a kill during a write) is ignored.
* `judgments.jsonl` (open QA only): `{"id", "prediction", "correct", "score", "parsed", "raw", "judge"}` per
  judged answer, cached and resumed per (item, answer, judge), so judge calls are not repeated either.
* `scored_items.jsonl`: every item with its gold answer, prediction and what scoring made of it (extracted
  concept / count, correct...), in item order, for error analysis.
* `report.json`: `{"task", "model", "num_items", "metrics", ...}`; deterministic (no timestamps), so a resumed
  run writes the same report as an uninterrupted one.
* `report.md`: the same numbers as markdown tables.
* plots: `accuracy_by_type.png` (BABEL-QA), `counts_scatter.png` (counting), `judge_scores.png` and
  `accuracy_by_type.png` per category (open QA), and `key_frames_<id>.png` for the item chosen with `plot_item`.

Tasks and their inputs:

* `babel_qa`: BABEL-QA in its released layout (markendo/HumanMotionQA): `questions.json` (question id ->
  `{"babel_id", "question", "answer", "query_type", "relation_type", "program", "question_id", ...}`),
  `motion_sequences/<babel_id>/joints.npy` (T, 22, 3) at 30 fps, and the authors' split file
  `split_question_ids.json` (`{"train": [ids], "val": [...], "test": [...]}`), looked up in the data folder
  unless given. The joints are AMASS world coordinates (Z up, as the HuMoR-style processing leaves them); the
  items say so (`up_axis="z"`) to the processor.
* `counting`: a JSONL file, one item per line: `{"id", "motion" (path, relative to the file), "count" (int),
  optional "question", "fps", "up_axis", "video"}`.
* `open_qa`: a JSONL file: `{"id", "motion" and/or "video", "question", "answer" (the reference; "reference" is
  accepted too), optional "category", "fps", "up_axis"}`. Needs a judge (`llamo.evaluation.judge`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .answers import (
    extract_choice,
    extract_count,
    find_mentions,
    vocabulary_for_query_type,
)
from .metrics import babel_qa_metrics, counting_metrics, judge_metrics

__all__ = [
    "BABEL_QA_FPS",
    "BABEL_QA_SPLIT_FILE",
    "BabelQATask",
    "CountingTask",
    "EvalItem",
    "LlamoPredictor",
    "OpenQATask",
    "Predictor",
    "Task",
    "load_babel_qa",
    "load_counting",
    "load_open_qa",
    "make_task",
    "run_evaluation",
]

BABEL_QA_SPLIT_FILE = "split_question_ids.json"
BABEL_QA_FPS = 30.0
BABEL_QA_RELATIONS = {
    "no_relation": "none",
    "none": "none",
    "before": "before",
    "after": "after",
    "in_between": "in_between",
    "in between": "in_between",
}
DEFAULT_BABEL_QA_SUFFIX = "Answer with a short phrase."
DEFAULT_COUNTING_QUESTION = "How many times does the person repeat the action? Answer with a number."


@dataclass
class EvalItem:
    """One benchmark item. `prompt` (what the model reads; defaults to `question`) may add an answer-format
    instruction; `question` is the benchmark's question (what a judge reads). `answer`: the gold concept
    (BABEL-QA), count (counting) or reference answer (open QA). `motion`/`video`: file paths."""

    id: str
    question: str
    answer: Any = None
    motion: str | None = None
    video: str | None = None
    prompt: str | None = None
    fps: float | None = None
    up_axis: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.id = str(self.id)
        if self.prompt is None:
            self.prompt = self.question


@runtime_checkable
class Predictor(Protocol):
    """Turns a batch of items into one answer string each (same order). May define `name` for reports and
    `key_frames(item) -> {"key_frame_indices": [...], "frame_scores": [...]}` for the key-frame plot."""

    def predict(self, items: Sequence[EvalItem]) -> list[str]: ...


# --------------------------------------------------------------------------------------------------------------
# LLaMo predictor
# --------------------------------------------------------------------------------------------------------------


class LlamoPredictor:
    """A LLaMo checkpoint as predictor: chat messages -> processor chat template -> greedy `generate`.

    Each item becomes `[{"role": "user", "content": [{"type": "video", "path": ...}?, {"type": "motion",
    "path": ...}?, {"type": "text", "text": item.prompt}]}]`; the processor gets `motion_fps`/`up_axis` from the
    items when they know them. Only the newly generated tokens are decoded.
    """

    def __init__(
        self,
        model,
        processor,
        max_new_tokens: int = 64,
        batch_size: int = 8,
        generate_kwargs=None,
        name: str | None = None,
    ):
        self.model, self.processor = model, processor
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.generate_kwargs = dict(generate_kwargs or {})
        self.name = name or getattr(model, "name_or_path", None) or type(model).__name__

    @classmethod
    def from_pretrained(cls, checkpoint: str, device: str | None = None, dtype=None, **kwargs) -> LlamoPredictor:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:  # registers the llamo Auto classes when the packages are installed
            import modeling_llamo  # noqa: F401
        except ImportError:
            pass
        processor = AutoProcessor.from_pretrained(checkpoint)
        model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=dtype or torch.float32)
        if device:
            model = model.to(device)
        # the name keys the prediction cache, so "ckpt/" and "ckpt" are one model
        return cls(model.eval(), processor, name=kwargs.pop("name", os.path.normpath(str(checkpoint))), **kwargs)

    @staticmethod
    def messages(item: EvalItem) -> list[dict]:
        content = []
        if item.video:
            content.append({"type": "video", "path": str(item.video)})
        if item.motion:
            content.append({"type": "motion", "path": str(item.motion)})
        content.append({"type": "text", "text": item.prompt})
        return [{"role": "user", "content": content}]

    def model_inputs(self, items: Sequence[EvalItem]):
        """The batch of model inputs (prompt tokens, clips, masks) the predictor feeds `generate` for `items`."""
        processor_kwargs = {"padding": True}  # inside processor_kwargs: transformers warns about loose call kwargs
        motion_items = [item for item in items if item.motion]
        if motion_items and all(item.fps for item in motion_items):
            processor_kwargs["motion_fps"] = [float(item.fps) for item in motion_items]
        axes = {item.up_axis for item in motion_items}
        if len(axes) == 1 and None not in axes:
            processor_kwargs["up_axis"] = axes.pop()
        inputs = self.processor.apply_chat_template(
            [self.messages(item) for item in items],
            tokenize=True,
            return_dict=True,
            add_generation_prompt=True,
            return_tensors="pt",
            processor_kwargs=processor_kwargs,
        )
        return inputs.to(self.model.device)

    def predict(self, items: Sequence[EvalItem]) -> list[str]:
        import torch

        if len({item.up_axis for item in items if item.motion}) > 1:  # one processor call per up axis
            return [text for item in items for text in self.predict([item])]
        answers = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            inputs = self.model_inputs(chunk)
            with torch.no_grad():
                output = self.model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    **self.generate_kwargs,
                )
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            answers.extend(text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True))
        return answers

    def key_frames(self, item: EvalItem) -> dict | None:
        """One forward pass over the item's prompt: the selected key frames, those of them evenly spaced whatever
        the question (`num_coverage_frames`) and the frame scores (E6) of its clip, on the processor's motion
        timeline (valid frames only)."""
        import torch

        inputs = self.model_inputs([item])
        with torch.no_grad():
            output = self.model(**inputs)
        indices = getattr(output, "key_frame_indices", None)
        scores = getattr(output, "frame_scores", None)
        if indices is None:
            return None
        from llamo.inference import evenly_spaced_frames

        result = {
            "key_frame_indices": [int(i) for i in indices[0].tolist()],
            "coverage_frame_indices": evenly_spaced_frames(indices[0], output.evenly_spaced_key_frames[0]),
        }
        if scores is not None:
            mask = inputs.get("motion_mask", inputs.get("frame_mask"))
            valid = int(mask[0].sum()) if mask is not None else scores.shape[-1]
            result["frame_scores"] = [float(s) for s in scores[0, :valid].float().tolist()]
        return result


# --------------------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------------------


def _read_json(path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _read_jsonl(path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON object ({err}).") from err
    return rows


def _filter_concepts(question: dict) -> list[str]:
    """The concepts a BABEL-QA question filters on (from its program); never its answer."""
    concepts = []
    for step in question.get("program") or []:
        if str(step.get("function", "")).startswith("filter_"):
            concepts.extend(str(v) for v in step.get("value_inputs") or [])
    return concepts


def load_babel_qa(
    data_dir,
    split: str = "test",
    split_file=None,
    limit: int | None = None,
    prompt_suffix: str = DEFAULT_BABEL_QA_SUFFIX,
    up_axis: str | None = "z",
    check_files: bool = True,
) -> list[EvalItem]:
    """BABEL-QA items of one split, in the split file's order (read by `llamo.data.motion_qa.load_babel_qa`; items
    carry the rendered video too when the folder has one, as the motion-QA suite may).

    Args:
        data_dir: folder with `questions.json` and `motion_sequences/`.
        split: `train`, `val`, `test`, or `all` (every question in `questions.json`, no split file needed).
        split_file: the authors' `split_question_ids.json`; default: that file in `data_dir`.
        limit: keep the first `limit` items. prompt_suffix: appended to the question in the prompt.
        up_axis: declared to the processor for the joints ("z": AMASS world frame).
        check_files: raise if a motion file is missing.
    """
    from llamo.data.motion_qa import load_babel_qa as read_babel_qa

    data_dir = Path(data_dir)
    questions_path = data_dir / "questions.json"
    if not questions_path.is_file():
        raise FileNotFoundError(f"{questions_path} not found: is {data_dir} a BABEL-QA folder?")
    split_path = None
    if split != "all":
        split_path = Path(split_file) if split_file else data_dir / BABEL_QA_SPLIT_FILE
        if not split_path.is_file():
            raise FileNotFoundError(
                f"BABEL-QA split file {split_path} not found; pass split_file= (the authors' {BABEL_QA_SPLIT_FILE}) "
                "or split='all'."
            )
        splits = _read_json(split_path)
        if split not in splits:
            raise ValueError(f"Split {split!r} not in {split_path} (has {sorted(splits)}).")
    records = read_babel_qa(data_dir, None if split == "all" else split, split_file=split_path)
    items = []
    for record in records[:limit] if limit is not None else records:
        if check_files and not Path(record.motion_path).is_file():
            raise FileNotFoundError(f"Motion of question {record.question_id} missing: {record.motion_path}")
        query_type = str(record.query_type).replace("query_", "")
        relation = BABEL_QA_RELATIONS.get(str(record.relation_type), str(record.relation_type))
        text = str(record.question).strip()
        items.append(
            EvalItem(
                id=record.question_id,
                question=text,
                prompt=f"{text} {prompt_suffix}".strip() if prompt_suffix else text,
                answer=record.answer,
                motion=record.motion_path,
                video=record.video_path,
                fps=BABEL_QA_FPS,
                up_axis=up_axis,
                meta={
                    "babel_id": record.babel_id,
                    "query_type": query_type,
                    "relation_type": relation,
                    "filter_concepts": _filter_concepts(record.raw),
                },
            )
        )
    return items


def _resolve(base: Path, value):
    if value is None:
        return None
    path = Path(value)
    return str(path if path.is_absolute() else base / path)


def _jsonl_path(data, split: str | None) -> Path:
    data = Path(data)
    if data.is_dir():
        for name in (f"{split}.jsonl" if split else None, "items.jsonl", "data.jsonl"):
            if name and (data / name).is_file():
                return data / name
        raise FileNotFoundError(f"No {split}.jsonl / items.jsonl in {data}.")
    return data


def load_counting(data, split: str | None = None, limit: int | None = None) -> list[EvalItem]:
    """Counting items from a JSONL file (or a folder holding `<split>.jsonl`); see the module docstring."""
    path = _jsonl_path(data, split)
    items = []
    for index, row in enumerate(_read_jsonl(path)):
        if "count" not in row:
            raise ValueError(f"{path}: item {row.get('id', index)} has no 'count'.")
        items.append(
            EvalItem(
                id=str(row.get("id", index)),
                question=row.get("question") or DEFAULT_COUNTING_QUESTION,
                answer=int(row["count"]),
                motion=_resolve(path.parent, row.get("motion")),
                video=_resolve(path.parent, row.get("video")),
                fps=row.get("fps"),
                up_axis=row.get("up_axis"),
                meta={k: v for k, v in row.items() if k not in ("id", "question", "count", "motion", "video")},
            )
        )
    return items[:limit] if limit is not None else items


def load_open_qa(data, split: str | None = None, limit: int | None = None) -> list[EvalItem]:
    """Open QA items (MoVid-Bench / Swing style) from a JSONL file; see the module docstring."""
    path = _jsonl_path(data, split)
    items = []
    for index, row in enumerate(_read_jsonl(path)):
        reference = row.get("answer", row.get("reference"))
        if reference is None or "question" not in row:
            raise ValueError(f"{path}: item {row.get('id', index)} needs 'question' and 'answer'.")
        items.append(
            EvalItem(
                id=str(row.get("id", index)),
                question=row["question"],
                answer=str(reference),
                motion=_resolve(path.parent, row.get("motion")),
                video=_resolve(path.parent, row.get("video")),
                fps=row.get("fps"),
                up_axis=row.get("up_axis"),
                meta={"category": str(row.get("category", "all"))},
            )
        )
    return items[:limit] if limit is not None else items


# --------------------------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Task:
    """A benchmark protocol: scores one prediction, aggregates metrics, writes tables and plots."""

    name = "task"
    scoring_cache: str | None = None  # file name when scoring is expensive (a judge) and must be cached too

    def score(self, item: EvalItem, prediction: str) -> dict:
        raise NotImplementedError

    def aggregate(self, items: Sequence[EvalItem], scored: Sequence[dict]) -> dict:
        raise NotImplementedError

    def markdown(self, report: dict) -> str:
        raise NotImplementedError

    def plots(self, metrics: dict, items, scored, output_dir: Path) -> list[str]:
        return []

    def describe(self) -> dict:
        return {}


class BabelQATask(Task):
    """Exact match of the concept extracted from the answer (closed vocabulary of the query type)."""

    name = "babel_qa"

    def __init__(self, avoid_question_concepts: bool = True, extra_concepts: dict | None = None):
        """`extra_concepts`: query type -> concepts added to BABEL-QA's closed vocabulary of that type (a dataset
        in the BABEL-QA layout with answers outside it, such as the motion-QA suite's "turn")."""
        self.avoid_question_concepts = avoid_question_concepts
        self.extra_concepts = {key.removeprefix("query_"): list(v) for key, v in (extra_concepts or {}).items()}

    def score(self, item, prediction):
        vocab = vocabulary_for_query_type(item.meta["query_type"])
        vocab = vocab.extended(self.extra_concepts.get(vocab.name, ()))
        avoid = ()
        if self.avoid_question_concepts:
            avoid = item.meta.get("filter_concepts") or [
                m.concept for m in find_mentions(item.question, vocab) if m.vocabulary == vocab.name
            ]
        extracted = extract_choice(prediction, vocab, avoid=avoid)
        return {
            "extracted": extracted,
            "correct": extracted is not None and extracted == item.answer,
        }

    def aggregate(self, items, scored):
        return babel_qa_metrics(
            [s["extracted"] for s in scored],
            [i.answer for i in items],
            [i.meta["query_type"] for i in items],
            [i.meta["relation_type"] for i in items],
        )

    def markdown(self, report):
        m = report["metrics"]
        parts = [
            _table(
                ["metric", "value"],
                [
                    ["accuracy", m["accuracy"]],
                    ["correct", m["correct"]],
                    ["total", m["total"]],
                    ["unparsed answers", m["num_unparsed"]],
                ],
            ),
            "### By query type",
            _table(
                ["query type", "accuracy", "correct", "total"],
                [[k.replace("_", " "), v["accuracy"], v["correct"], v["total"]] for k, v in m["by_query_type"].items()],
            ),
            "### By relation",
            _table(
                ["relation", "accuracy", "correct", "total"],
                [[k.replace("_", " "), v["accuracy"], v["correct"], v["total"]] for k, v in m["by_relation"].items()],
            ),
        ]
        return "\n\n".join(parts)

    def plots(self, metrics, items, scored, output_dir):
        from .plots import plot_accuracy_by_type

        path = output_dir / "accuracy_by_type.png"
        plot_accuracy_by_type(
            {
                "query type": metrics["by_query_type"],
                "relation": metrics["by_relation"],
            },
            path,
            title=f"BABEL-QA accuracy {metrics['accuracy']:.3f} (n={metrics['total']})",
        )
        return [path.name]

    def describe(self):
        return {"avoid_question_concepts": self.avoid_question_concepts, "extra_concepts": self.extra_concepts}


class CountingTask(Task):
    """Mo-RepCount protocol: the count read from the answer vs the true count (OBZ, OBO, MAE, RMSE)."""

    name = "counting"

    def score(self, item, prediction):
        count = extract_count(prediction)
        return {
            "extracted": count,
            "correct": count is not None and count == item.answer,
        }

    def aggregate(self, items, scored):
        return counting_metrics([s["extracted"] for s in scored], [i.answer for i in items])

    def markdown(self, report):
        m = report["metrics"]
        rows = [
            ["OBZ (exact) \u2191", m["obz"]],
            ["OBO (within one) \u2191", m["obo"]],
            ["MAE (relative) \u2193", m["mae"]],
            ["RMSE \u2193", m["rmse"]],
            ["MAE, parsed only", m["mae_parsed"]],
            ["RMSE, parsed only", m["rmse_parsed"]],
            ["unparsed answers", m["num_unparsed"]],
            ["total", m["total"]],
        ]
        return _table(["metric", "value"], rows)

    def plots(self, metrics, items, scored, output_dir):
        from .plots import plot_counts_scatter

        path = output_dir / "counts_scatter.png"
        plot_counts_scatter(
            [s["extracted"] for s in scored],
            [i.answer for i in items],
            path,
            title=f"Counts: OBZ {metrics['obz']:.2f}, OBO {metrics['obo']:.2f}",
        )
        return [path.name]


class OpenQATask(Task):
    """MoVid-Bench / Swing protocol: a judge marks each answer correct/incorrect and scores it 0-5."""

    name = "open_qa"
    scoring_cache = "judgments.jsonl"

    def __init__(self, judge):
        if judge is None:
            raise ValueError("open_qa needs a judge (HTTPJudge, LocalJudge, or --judge http|local:PATH).")
        self.judge = judge

    def score(self, item, prediction):
        result = self.judge.judge(item.question, item.answer, prediction)
        return {
            "correct": bool(result.correct),
            "score": float(result.score),
            "parsed": bool(result.parsed),
            "raw": result.raw,
        }

    def aggregate(self, items, scored):
        return judge_metrics(
            [s["correct"] for s in scored],
            [s["score"] for s in scored],
            [i.meta.get("category", "all") for i in items],
            [s.get("parsed", True) for s in scored],
        )

    def markdown(self, report):
        m = report["metrics"]
        parts = [
            f"Judge: `{report.get('judge', '?')}`",
            _table(
                ["metric", "value"],
                [
                    ["accuracy (judged correct)", m["accuracy"]],
                    ["mean score (0-5)", m["score"]],
                    ["unparsed judge replies", m["num_unparsed"]],
                    ["total", m["total"]],
                ],
            ),
        ]
        if m.get("by_category"):
            parts += [
                "### By category",
                _table(
                    ["category", "accuracy", "score", "total"],
                    [[k, v["accuracy"], v["score"], v["total"]] for k, v in m["by_category"].items()],
                ),
            ]
        return "\n\n".join(parts)

    def plots(self, metrics, items, scored, output_dir):
        from .plots import plot_accuracy_by_type, plot_judge_scores

        names = []
        path = output_dir / "judge_scores.png"
        plot_judge_scores(
            [s["score"] for s in scored],
            path,
            title=f"Judge scores (mean {metrics['score']:.2f})",
        )
        names.append(path.name)
        by_cat = {
            k: {
                "accuracy": v["accuracy"],
                "correct": round(v["accuracy"] * v["total"]),
                "total": v["total"],
            }
            for k, v in (metrics.get("by_category") or {}).items()
        }
        if by_cat:
            path = output_dir / "accuracy_by_type.png"
            plot_accuracy_by_type(
                {"category": by_cat},
                path,
                title=f"Judged accuracy {metrics['accuracy']:.3f}",
            )
            names.append(path.name)
        return names

    def describe(self):
        return {"judge": getattr(self.judge, "name", type(self.judge).__name__)}


def make_task(name: str, judge=None, **kwargs) -> Task:
    if name == "babel_qa":
        return BabelQATask(**kwargs)
    if name == "counting":
        return CountingTask()
    if name == "open_qa":
        return OpenQATask(judge)
    raise ValueError(f"Unknown task {name!r}: babel_qa, counting or open_qa.")


# --------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------


def _read_cache_records(path: Path) -> list[dict]:
    """The records of a JSONL cache in file order (ids as strings); malformed lines (an interrupted write) are
    skipped. Callers keep the records that match their run before keying them by id, so a folder that holds the
    answers of several models or judges serves each one its own."""
    records = []
    if not path.is_file():
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "id" in record:
                records.append({**record, "id": str(record["id"])})
    return records


class _Appender:
    """Append-only JSONL writer that repairs a missing final newline and flushes (and fsyncs) every write."""

    def __init__(self, path: Path):
        self.path = path
        needs_newline = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        if needs_newline:
            self.handle.write("\n")

    def write(self, records: Iterable[dict]) -> None:
        for record in records:
            self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="item",
        disable=not enabled,
        dynamic_ncols=True,
    )


def _json_safe(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run_evaluation(
    task,
    items: Sequence[EvalItem],
    predictor: Predictor,
    output_dir,
    batch_size: int = 8,
    resume: bool = True,
    judge=None,
    plot_item: str | None = None,
    progress: bool = True,
    model_name: str | None = None,
) -> dict:
    """Predict every item (batched, cached, resumable), score, and write the report files (see module docstring).

    Args:
        task: a `Task` or a task name (`babel_qa`, `counting`, `open_qa` with `judge=`).
        items: the items, ids unique. predictor: a `Predictor`.
        output_dir: created if needed. batch_size: items per `predictor.predict` call (and per cache flush).
        resume: reuse `predictions.jsonl` (and `judgments.jsonl`) entries of these ids; False starts afresh.
        plot_item: id of an item (or "first") to draw with its key frames (`key_frames_<id>.png`) when the item's
            motion is a joints `.npy`; key frames come from `predictor.key_frames(item)` when it exists.
        progress: show tqdm bars. model_name: for the report (default: `predictor.name`).

    Returns:
        The report dict (also written to `report.json`).
    """
    if isinstance(task, str):
        task = make_task(task, judge=judge)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"Item ids must be unique; repeated: {duplicates}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1.")

    cache_paths = [output_dir / "predictions.jsonl"] + ([output_dir / task.scoring_cache] if task.scoring_cache else [])
    if not resume:
        for path in cache_paths:
            if path.exists():
                path.unlink()

    # 1. predictions
    pred_path = cache_paths[0]
    model_name = model_name or getattr(predictor, "name", type(predictor).__name__)
    prompts = {item.id: item.prompt for item in items}
    # a cached prediction counts only for the same model and prompt: another checkpoint's answers in the same
    # output folder, or a changed prompt suffix, must not be reused (records without "model" predate the field)
    cached = {
        r["id"]: r
        for r in _read_cache_records(pred_path)
        if r["id"] in prompts and r.get("prompt") == prompts[r["id"]] and r.get("model", model_name) == model_name
    }
    todo = [item for item in items if item.id not in cached]
    bar = _progress(len(items), len(items) - len(todo), f"{task.name}: predict", progress)
    writer = _Appender(pred_path)
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            answers = predictor.predict(batch)
            if len(answers) != len(batch):
                raise RuntimeError(f"Predictor returned {len(answers)} answers for {len(batch)} items.")
            records = [
                {"id": item.id, "prompt": item.prompt, "prediction": str(answer), "model": model_name}
                for item, answer in zip(batch, answers)
            ]
            writer.write(records)
            cached.update({r["id"]: r for r in records})
            bar.update(len(batch))
    finally:
        writer.close()
        bar.close()
    predictions = [cached[item.id]["prediction"] for item in items]

    # 2. scoring (cached too when it is expensive)
    if task.scoring_cache:
        score_path = cache_paths[1]
        settings = task.describe()  # e.g. the judge: verdicts of another judge are not reused
        # keyed by the prediction too: a verdict belongs to the answer it judged, whichever model gave it
        score_cache = {
            (r["id"], r.get("prediction")): r
            for r in _read_cache_records(score_path)
            if all(r.get(f) == v for f, v in settings.items())
        }
        missing = [(item, pred) for item, pred in zip(items, predictions) if (item.id, pred) not in score_cache]
        bar = _progress(len(items), len(items) - len(missing), f"{task.name}: score", progress)
        writer = _Appender(score_path)
        try:
            for item, pred in missing:
                record = {"id": item.id, "prediction": pred, **task.score(item, pred)}
                record.update(settings)
                writer.write([record])
                score_cache[item.id, pred] = record
                bar.update(1)
        finally:
            writer.close()
            bar.close()
        scored = [
            {k: v for k, v in score_cache[item.id, pred].items() if k not in ("id", "prediction")}
            for item, pred in zip(items, predictions)
        ]
    else:
        scored = [task.score(item, pred) for item, pred in zip(items, predictions)]

    with open(output_dir / "scored_items.jsonl", "w", encoding="utf-8") as handle:
        for item, pred, score in zip(items, predictions, scored):
            row = {
                "id": item.id,
                "question": item.question,
                "answer": item.answer,
                "prediction": pred,
                **score,
                **{k: v for k, v in item.meta.items() if k != "filter_concepts"},
            }
            handle.write(json.dumps(_json_safe(row), ensure_ascii=False) + "\n")

    # 3. report
    metrics = task.aggregate(items, scored)
    report = {
        "task": task.name,
        "model": model_name,
        "num_items": len(items),
        **task.describe(),
        "metrics": metrics,
    }
    report["plots"] = task.plots(metrics, items, scored, output_dir)
    if plot_item is not None and items:
        name = _plot_item(items, predictor, plot_item, output_dir)
        if name:
            report["plots"].append(name)
    report = _json_safe(report)
    with open(output_dir / "report.json", "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    with open(output_dir / "report.md", "w", encoding="utf-8") as handle:
        handle.write(_markdown(task, report))
    return report


def _markdown(task: Task, report: dict) -> str:
    lines = [
        f"# {report['task']} evaluation",
        "",
        f"Model: `{report['model']}`  ",
        f"Items: {report['num_items']}",
        "",
    ]
    lines += [task.markdown(report), ""]
    if report.get("plots"):
        lines += ["### Plots", ""] + [f"![{name}]({name})" for name in report["plots"]] + [""]
    return "\n".join(lines)


def _plot_item(items, predictor, plot_item: str, output_dir: Path) -> str | None:
    import numpy as np

    from .plots import plot_key_frames

    item = items[0] if plot_item == "first" else next((i for i in items if i.id == str(plot_item)), None)
    if item is None:
        raise ValueError(f"plot_item {plot_item!r} is not an item id.")
    if not item.motion or not str(item.motion).endswith(".npy"):
        return None
    joints = np.load(item.motion, allow_pickle=False)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        return None
    selection = None
    if hasattr(predictor, "key_frames"):
        selection = predictor.key_frames(item)
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.id)
    path = output_dir / f"key_frames_{safe_id}.png"
    if selection:
        plot_key_frames(
            joints,
            selection.get("frame_scores"),
            selection.get("key_frame_indices"),
            path,
            fps=item.fps or 30.0,
            title=f"{item.id}: {item.question}",
            coverage_frame_indices=selection.get("coverage_frame_indices"),
        )
        with open(output_dir / f"key_frames_{safe_id}.json", "w", encoding="utf-8") as handle:
            json.dump({"id": item.id, **selection}, handle)
    else:
        plot_key_frames(
            joints,
            None,
            None,
            path,
            fps=item.fps or 30.0,
            title=f"{item.id}: {item.question} (no key frames from this predictor)",
        )
    return path.name


def items_to_jsonl(items: Sequence[EvalItem], path) -> None:
    """Write items as JSONL (handy to freeze a subset)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(asdict(item), ensure_ascii=False) + "\n" for item in items)
