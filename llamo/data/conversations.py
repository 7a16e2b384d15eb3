"""Conversation datasets for fine-tuning LLaMo: a JSON/JSONL format, a `datasets` loader and the training collator.

Data format
-----------
One record per conversation, in a `.jsonl` file (one JSON object a line) or a `.json` file (a list of objects, or
an object with a `"data"` list). The canonical record mirrors the chat template's content blocks::

    {
      "id": "babel-qa/0042",                                  # optional; defaults to "<file>:<line>"
      "messages": [
        {"role": "system", "content": "You are a motion expert."},        # optional
        {"role": "user", "content": [
          {"type": "motion", "path": "motions/0042.npy", "fps": 20},       # AMASS .npz, smplx .npz, joints (T,22,3)
          {"type": "video",  "path": "videos/0042.mp4"},                    #   .npy, HumanML3D (T,263) .npy; video: any
          {"type": "text",   "text": "What does the person do after turning left?"}   # PyAV-readable file
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "walk forward"}]}
      ],
      "metadata": {"query_type": "action", "relation": "after"}          # optional, free-form, kept as JSON
    }

- `content` may also be a plain string (text only).
- Media paths are relative to `media_root` (default: the folder of the JSON file) or absolute. `fps` on a motion
  block is its native frame rate, needed for formats that store none (joint `.npy` files); AMASS `.npz` files carry
  their own and HumanML3D 263-d features default to 20 fps. `up_axis` (`"x"`/`"y"`/`"z"`) overrides the default up axis
  (y) of joint-position files, e.g. `"z"` for BABEL-QA's Z-up `joints.npy`; SMPL-parameter files use their format's
  (AMASS: z).
- A video block directly followed by a motion block (or the reverse) is *one* clip sharing one `<motion>` marker,
  exactly as in the chat template; several clips per conversation and several turns are allowed.
- Every assistant turn is a training target; everything else (system, user words, media placeholders, chat markup,
  padding) is `-100` in the labels (E13). The answer's closing `<|im_end|>` is a target, so the model learns to stop.

The LLaVA/MotionLLM "shorthand" is accepted too and converted on load::

    {"id": "x", "motion": "m.npy", "motion_fps": 20, "video": "v.mp4",
     "conversations": [{"from": "human", "value": "<motion>\\nWhat is the person doing?"},
                       {"from": "gpt", "value": "Jogging in place."}]}

  The clip goes where `<motion>` (or `<video>`) appears in a human turn, else before the first human turn's text.

Loading and decoding
--------------------
`load_conversations(paths)` returns a `datasets.Dataset` holding only text and (absolute) media paths: media are
decoded lazily, in the collator, i.e. inside the `DataLoader` workers while the model trains. Missing files are
found at load time (a cheap `stat`) and unreadable/corrupt ones at collate time; either way the report names the
sample id and the path, and `on_error="raise"` (default) stops with a `MediaError` while `on_error="skip"` logs a
warning and drops the sample (never a silently wrong batch). `check_media` decodes everything up front when you
want the full list of bad files before a long run.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)

MEDIA_TYPES = ("motion", "video")
ON_ERROR_CHOICES = ("raise", "skip")
_SHORTHAND_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_MARKER = re.compile(r"<motion>|<video>")


class MediaError(RuntimeError):
    """A sample's media file is missing, unreadable or corrupt; the message names the sample and the path(s)."""

    def __init__(self, message: str, failures: list[dict] | None = None):
        super().__init__(message)
        self.failures = failures or []


# ----------------------------------------------------------------------------------------------------------------
# Schema
# ----------------------------------------------------------------------------------------------------------------


def conversation_features():
    """The `datasets.Features` of a loaded conversation dataset (fixed, so datasets from different sources concatenate)."""
    from datasets import Features, List, Value

    block = {"type": Value("string"), "text": Value("string"), "path": Value("string"), "fps": Value("float64"),
             "up_axis": Value("string")}
    return Features(
        {
            "id": Value("string"),
            "messages": List({"role": Value("string"), "content": List(block)}),
            "metadata": Value("string"),
        }
    )


def _block(type_: str, text=None, path=None, fps=None, up_axis=None) -> dict:
    return {"type": type_, "text": text, "path": path, "fps": None if fps is None else float(fps), "up_axis": up_axis}


def _resolve(path: str, media_root: str | None) -> str:
    path = os.path.expanduser(str(path))
    if not os.path.isabs(path) and media_root is not None:
        path = os.path.join(media_root, path)
    return os.path.abspath(path)


def normalize_record(record: dict, media_root: str | None = None, default_id: str | None = None) -> dict:
    """One input record (canonical or shorthand) -> the canonical, schema-conforming row with absolute paths.

    Raises `ValueError` naming the record for anything malformed (no messages, unknown block type, no answer).
    """
    rid = str(record.get("id", default_id if default_id is not None else ""))
    if "messages" in record:
        messages = [_normalize_message(message, media_root, rid) for message in record["messages"]]
    elif "conversations" in record:
        messages = _from_shorthand(record, media_root, rid)
    else:
        raise ValueError(f"Record {rid!r}: needs `messages` (or the shorthand `conversations`); keys: {sorted(record)}.")
    if not any(message["role"] == "assistant" for message in messages):
        raise ValueError(f"Record {rid!r}: no assistant turn, nothing to learn from.")
    metadata = record.get("metadata")
    return {"id": rid, "messages": messages, "metadata": json.dumps(metadata) if metadata is not None else None}


def _normalize_message(message: dict, media_root, rid) -> dict:
    role = message.get("role")
    if role not in ("system", "user", "assistant"):
        raise ValueError(f"Record {rid!r}: message role must be system/user/assistant, got {role!r}.")
    content = message.get("content")
    if isinstance(content, str):
        return {"role": role, "content": [_block("text", text=content)]}
    if not isinstance(content, list):
        raise ValueError(f"Record {rid!r}: message content must be a string or a list of blocks, got {type(content).__name__}.")
    blocks = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            blocks.append(_block("text", text=str(block.get("text", ""))))
        elif kind in MEDIA_TYPES:
            path = block.get("path", block.get(kind))
            if not isinstance(path, (str, os.PathLike)):
                raise ValueError(f"Record {rid!r}: a {kind} block needs a file `path` (in-memory media can't be stored).")
            if role == "assistant":
                raise ValueError(f"Record {rid!r}: media in an assistant turn are not supported.")
            blocks.append(_block(kind, path=_resolve(path, media_root), fps=block.get("fps"), up_axis=block.get("up_axis")))
        else:
            raise ValueError(f"Record {rid!r}: unknown content block {block!r} (types: text, motion, video).")
    return {"role": role, "content": blocks}


def _from_shorthand(record: dict, media_root, rid) -> list[dict]:
    clip = []
    if record.get("video") is not None:
        clip.append(_block("video", path=_resolve(record["video"], media_root)))
    if record.get("motion") is not None:
        clip.append(_block("motion", path=_resolve(record["motion"], media_root), fps=record.get("motion_fps"),
                           up_axis=record.get("motion_up_axis")))
    messages, placed = [], False
    for turn in record["conversations"]:
        role = _SHORTHAND_ROLES.get(turn.get("from", turn.get("role")))
        if role is None:
            raise ValueError(f"Record {rid!r}: unknown speaker {turn.get('from')!r} (human/gpt/system).")
        text = str(turn.get("value", turn.get("content", "")))
        blocks = []
        if role == "user" and clip and not placed:
            pieces = _MARKER.split(text, maxsplit=1)
            before, after = (pieces[0], pieces[1]) if len(pieces) == 2 else ("", text)
            if before.strip():
                blocks.append(_block("text", text=before.strip()))
            blocks.extend(clip)
            placed = True
            text = after
        text = _MARKER.sub("", text).strip()
        if text or not blocks:
            blocks.append(_block("text", text=text))
        messages.append({"role": role, "content": blocks})
    if clip and not placed:
        raise ValueError(f"Record {rid!r}: has media but no human turn to attach them to.")
    return messages


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def read_records(path: str) -> list[dict]:
    """Raw records of one `.json` / `.jsonl` file (errors name the file and line)."""
    with open(path, encoding="utf-8") as handle:
        if path.endswith(".jsonl"):
            records = []
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{path}:{number}: not valid JSON ({error}).") from error
            return records
        data = json.load(handle)
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of records (or {{'data': [...]}}).")
    return data


def media_paths(example: dict) -> list[str]:
    """Every media path of a (canonical) example, in order."""
    return [block["path"] for message in example["messages"] for block in message["content"] if block["type"] in MEDIA_TYPES]


def records_to_dataset(rows: Sequence[dict], on_error: str = "raise"):
    """Canonical rows -> `datasets.Dataset`, checking that every media file exists (see `on_error`)."""
    from datasets import Dataset

    _check_on_error(on_error)
    missing = [
        {"id": row["id"], "path": path, "error": "file not found"}
        for row in rows
        for path in media_paths(row)
        if not os.path.isfile(path)
    ]
    if missing:
        report = _format_failures(missing)
        if on_error == "raise":
            raise MediaError(f"{len(missing)} media file(s) missing (pass on_error='skip' to drop those samples):\n{report}", missing)
        logger.warning("Skipping %d sample(s) whose media are missing:\n%s", len({m["id"] for m in missing}), report)
        bad = {m["id"] for m in missing}
        rows = [row for row in rows if row["id"] not in bad]
    return Dataset.from_list(list(rows), features=conversation_features())


def load_conversations(
    paths: str | Iterable[str],
    media_root: str | None = None,
    on_error: str = "raise",
):
    """Load one or more `.json`/`.jsonl` conversation files (module docstring) into one `datasets.Dataset`.

    Args:
        paths: a file or a list of files.
        media_root: folder relative media paths start from; default: each file's own folder.
        on_error: `"raise"` (default) or `"skip"` samples whose media files are missing (reported either way).

    Returns:
        `datasets.Dataset` with columns `id`, `messages` (content blocks with absolute paths) and `metadata` (JSON).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    rows, seen = [], set()
    for path in paths:
        path = os.fspath(path)
        root = media_root if media_root is not None else os.path.dirname(os.path.abspath(path))
        for index, record in enumerate(read_records(path)):
            row = normalize_record(record, root, default_id=f"{os.path.basename(path)}:{index}")
            if row["id"] in seen:
                row["id"] = f"{row['id']}#{index}"
            seen.add(row["id"])
            rows.append(row)
    return records_to_dataset(rows, on_error=on_error)


def write_jsonl(rows: Iterable[dict], path: str) -> str:
    """Write records (canonical or shorthand) as JSON Lines; returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------------------
# Rows -> chat messages
# ----------------------------------------------------------------------------------------------------------------


def to_chat_messages(example: dict, default_motion_fps: float | None = None) -> list[dict]:
    """A dataset row -> messages for `processor.apply_chat_template`.

    A motion block's `fps` and `up_axis` stay on the block, where the processor applies them to that clip alone;
    `.npy` motions (which store no frame rate) get `default_motion_fps` when the row gives none. Called in the
    collator, i.e. in the `DataLoader` workers: media are decoded there, by the processor.
    """
    messages = []
    for message in example["messages"]:
        content = []
        for block in message["content"]:
            kind = block["type"]
            if kind == "text":
                content.append({"type": "text", "text": block["text"] or ""})
                continue
            entry = {"type": kind, "path": block["path"]}
            if kind == "motion":
                fps = block.get("fps")
                if fps is None and default_motion_fps is not None and block["path"].endswith(".npy"):
                    fps = default_motion_fps
                entry.update({key: value for key, value in (("fps", fps), ("up_axis", block.get("up_axis") or None))
                              if value is not None})
            content.append(entry)
        messages.append({"role": message["role"], "content": content})
    return messages


def split_prompt_and_answer(example: dict, default_motion_fps: float | None = None) -> tuple[list[dict], str]:
    """(messages before the last assistant turn, that turn's text) for generation-based evaluation."""
    messages = to_chat_messages(example, default_motion_fps)
    last = max(i for i, message in enumerate(messages) if message["role"] == "assistant")
    answer = "".join(block["text"] for block in messages[last]["content"] if block["type"] == "text")
    return messages[:last], answer


# ----------------------------------------------------------------------------------------------------------------
# Collator
# ----------------------------------------------------------------------------------------------------------------


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}.")


def _format_failures(failures: list[dict], limit: int = 20) -> str:
    lines = [f"  - sample {f['id']!r}: {f['path']}: {f['error']}" for f in failures[:limit]]
    if len(failures) > limit:
        lines.append(f"  ... and {len(failures) - limit} more")
    return "\n".join(lines)


def _failing_path(error: Exception, paths: list[str]) -> str:
    """The media path an error message names (the processor's errors name their source), else all of the sample's."""
    message = str(error)
    named = [path for path in paths if path in message]
    return ", ".join(named or paths) or "<no media>"


@dataclass
class LlamoDataCollator:
    """Batches conversation rows through a `LlamoProcessor` and builds answer-only labels (E13).

    Media are decoded here (lazily, in the `DataLoader` workers). Labels equal `input_ids` on the tokens of every
    assistant turn (the `{% generation %}` blocks of the chat template, closing `<|im_end|>` included) and `-100`
    everywhere else: system and user text, `<motion>` placeholders, chat markup and padding. Padding is on the
    right for training.

    Args:
        processor: a `LlamoProcessor`.
        on_error: a sample whose media fail to decode is reported (sample id, path, error) and then either raises
            a `MediaError` (`"raise"`, default) or is dropped from the batch (`"skip"`). A batch in which every
            sample fails raises in both modes (an empty batch can't be trained on).
        max_length: truncate sequences to this many tokens (the end of long answers is cut; a cut through the
            media placeholders raises).
        default_motion_fps: frame rate of `.npy` motion files (which store none) whose row gives no `fps`.
        processor_kwargs: extra keyword arguments for the processor call (e.g. `{"motion_format": "joints"}`).
        record_ids: keep the ids of every sample collated in `seen_ids` (for tests and debugging; only meaningful
            with `dataloader_num_workers=0`, since workers hold their own copy).
        augment: a training-time augmentation, chat messages -> chat messages, applied to each conversation before
            encoding (e.g. `llamo.data.augment.MirrorMotion`).
        key_frame_targets: also return `key_frame_targets` `(num_clips, T)`: 1 on the valid frames of each clip's
            timeline that fall in its row's metadata `focus_seconds` spans (`babel_qa_conversations(...,
            focus=True)`), for the model's key-frame grounding loss; all 0 for a row without spans. Rows must then
            hold one clip each.
        asked_frame_targets: also return `asked_frame_targets`, the same from the metadata's `asked_seconds` (the
            asked segment alone), for the asked-span head's loss.
        count_targets: also return `count_targets` `(num_clips,)`: the count a row's question asks for (metadata
            `query_type` "query_count", its `answer`), 0 for every other row, for the count head's loss. Rows
            must then hold one clip each.
    """

    processor: object
    on_error: str = "raise"
    max_length: int | None = None
    default_motion_fps: float | None = None
    processor_kwargs: dict = field(default_factory=dict)
    record_ids: bool = False
    augment: Callable[[list[dict]], list[dict]] | None = None
    key_frame_targets: bool = False
    asked_frame_targets: bool = False
    count_targets: bool = False
    seen_ids: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def __post_init__(self):
        _check_on_error(self.on_error)

    def encode(self, examples: list[dict]):
        """Tokenise and process `examples` in one batch, without error handling; returns a `BatchFeature` with labels."""
        conversations = [to_chat_messages(example, self.default_motion_fps) for example in examples]
        if self.augment is not None:
            conversations = [self.augment(conversation) for conversation in conversations]
        kwargs = {"padding_side": "right", **self.processor_kwargs}
        if self.max_length is not None:
            kwargs.update(truncation=True, max_length=self.max_length)
        batch = self.processor.apply_chat_template(
            conversations,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            return_tensors="pt",
            processor_kwargs=kwargs,
        )
        answer_mask = torch.as_tensor(batch.pop("assistant_masks")).bool() & batch["attention_mask"].bool()
        batch["labels"] = batch["input_ids"].masked_fill(~answer_mask, -100)
        if not bool(answer_mask.any()):
            raise ValueError("No answer tokens in this batch (answers truncated away?); nothing to learn from.")
        if self.key_frame_targets:
            batch["key_frame_targets"] = focus_targets(examples, batch)
        if self.asked_frame_targets:
            batch["asked_frame_targets"] = focus_targets(examples, batch, spans="asked_seconds")
        if self.count_targets:
            batch["count_targets"] = count_targets(examples, batch)
        return batch

    def __call__(self, examples: list[dict]):
        try:
            batch = self.encode(examples)
            good = examples
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
            good, failures = self._isolate(examples, error)
            if self.on_error == "raise" or not good:
                what = "every sample of the batch failed" if not good and self.on_error == "skip" else "media error"
                raise MediaError(f"{what}:\n{_format_failures(failures)}", failures) from error
            logger.warning("Skipping %d sample(s) with unreadable media:\n%s", len(failures), _format_failures(failures))
            self.skipped.extend(failures)
            batch = self.encode(good)
        if self.record_ids:
            self.seen_ids.extend(example["id"] for example in good)
        return batch

    def _isolate(self, examples: list[dict], batch_error: Exception) -> tuple[list[dict], list[dict]]:
        """Re-encode sample by sample to find which ones fail; returns (good samples, failure reports)."""
        if len(examples) == 1:
            results = [batch_error]
        else:
            results = []
            for example in examples:
                try:
                    self.encode([example])
                    results.append(None)
                except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
                    results.append(error)
        good, failures = [], []
        for example, error in zip(examples, results):
            if error is None:
                good.append(example)
            else:
                failures.append({
                    "id": example["id"],
                    "path": _failing_path(error, media_paths(example)),
                    "error": f"{type(error).__name__}: {error}",
                })
        if not failures:  # each alone works, together they don't: not a media problem
            raise batch_error
        return good, failures


def row_metadata(example: dict) -> dict:
    """A conversation row's metadata as a dict (rows keep it as a JSON string)."""
    metadata = example.get("metadata") or "{}"
    return json.loads(metadata) if isinstance(metadata, str) else metadata


def focus_targets(examples: list[dict], batch, spans: str = "focus_seconds") -> torch.Tensor:
    """`(num_clips, T)` float: 1 where a clip's timeline (`frame_timestamps`, valid frames only) falls in one of
    its row's `[start, end)` spans under the metadata key `spans` (the row's JSON metadata); one clip per row."""
    times = batch["frame_timestamps"]
    if times.shape[0] != len(examples):
        raise ValueError(f"Frame targets from {spans!r} need one clip per row; {len(examples)} rows hold "
                         f"{times.shape[0]} clips.")
    valid = torch.zeros(times.shape, dtype=torch.bool)
    for name in ("motion_mask", "frame_mask"):  # a clip's timeline: its motion's frames, else its video's
        if batch.get(name) is not None:
            mask = torch.as_tensor(batch[name]).bool()
            valid[:, : mask.shape[1]] |= mask
    targets = torch.zeros(times.shape, dtype=torch.float32)
    for row, example in enumerate(examples):
        for start, end in row_metadata(example).get(spans) or []:
            targets[row] += ((times[row] >= start) & (times[row] < end) & valid[row]).float()
    return targets.clamp(max=1.0)


def count_targets(examples: list[dict], batch) -> torch.Tensor:
    """`(num_clips,)` float: the count each row's question asks for (metadata `query_type` "query_count" and its
    gold `answer`), 0 for a row that asks none; one clip per row."""
    num_clips = batch["frame_timestamps"].shape[0]
    if num_clips != len(examples):
        raise ValueError(f"Count targets need one clip per row; {len(examples)} rows hold {num_clips} clips.")
    targets = torch.zeros(num_clips, dtype=torch.float32)
    for row, example in enumerate(examples):
        metadata = row_metadata(example)
        if metadata.get("query_type") == "query_count":
            targets[row] = float(metadata["answer"])
    return targets


def check_media(dataset, processor, on_error: str = "raise", default_motion_fps: float | None = None, processor_kwargs=None):
    """Decode every sample's media once, up front; returns `(dataset without the bad samples, failure reports)`.

    With `on_error="raise"` any failure raises a `MediaError` listing all of them (not only the first).
    """
    _check_on_error(on_error)
    collator = LlamoDataCollator(processor, on_error="skip", default_motion_fps=default_motion_fps,
                                 processor_kwargs=processor_kwargs or {})
    bad_ids, failures = set(), []
    for index in range(len(dataset)):
        example = dataset[index]
        try:
            collator.encode([example])
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
            bad_ids.add(example["id"])
            failures.append({"id": example["id"], "path": _failing_path(error, media_paths(example)),
                             "error": f"{type(error).__name__}: {error}"})
    if failures and on_error == "raise":
        raise MediaError(f"{len(failures)} sample(s) with unreadable media:\n{_format_failures(failures)}", failures)
    if failures:
        logger.warning("check_media: dropping %d sample(s):\n%s", len(failures), _format_failures(failures))
        dataset = dataset.filter(lambda example: example["id"] not in bad_ids)
    return dataset, failures


@dataclass
class LlamoGenerationCollator:
    """Left-padded prompts (up to the last assistant turn, with the generation prompt) and their reference answers,
    for generation-based evaluation. Returns `(batch, references, ids)`."""

    processor: object
    default_motion_fps: float | None = None
    processor_kwargs: dict = field(default_factory=dict)

    def __call__(self, examples: list[dict]):
        conversations, references = [], []
        for example in examples:
            prompt, answer = split_prompt_and_answer(example, self.default_motion_fps)
            conversations.append(prompt)
            references.append(answer)
        kwargs = {"padding_side": "left", **self.processor_kwargs}
        batch = self.processor.apply_chat_template(
            conversations, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt",
            processor_kwargs=kwargs,
        )
        return batch, references, [example["id"] for example in examples]


__all__ = [
    "LlamoDataCollator",
    "LlamoGenerationCollator",
    "MediaError",
    "check_media",
    "conversation_features",
    "load_conversations",
    "media_paths",
    "normalize_record",
    "read_records",
    "records_to_dataset",
    "split_prompt_and_answer",
    "to_chat_messages",
    "write_jsonl",
]
