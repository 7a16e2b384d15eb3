"""The motion-QA suite (`llamo.data.motion_qa`) as a benchmark: which items, which tasks, which table.

One definition serves the demo's quality report (`examples/evaluate_demo.py`) and the ablation
(`examples/ablate_demo.py`), so their numbers are comparable: the same seeded sample of each split for every
model, the suite's actions added to BABEL-QA's closed vocabulary, and one table layout.
"""

from __future__ import annotations

import functools
import json
import os
import random

from ..data.motion_qa import question_segments, suite_fps
from .harness import BabelQATask, CountingTask, load_babel_qa, run_evaluation
from .metrics import paired_accuracy_difference

CHOICE_TYPES = ("action", "direction", "body_part")
MODALITIES = ("motion", "video", "both")

TABLE_COLUMNS = ("choice acc (n)", "action", "direction", "body part", "none", "before", "after", "in between",
                 "count OBZ", "OBO", "MAE", "RMSE (n)")


def sample_items(data, split: str, limit: int, seed: int = 0, modality: str = "motion"):
    """A seeded sample of one split: `limit` choice questions and a third as many counting questions.

    `modality` keeps the motion, the rendered video or both in each item; video needs a suite generated with
    `render_videos=True`. Questions are the bare ones (no answer-format suffix): the demo is trained on them.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    items = load_babel_qa(data, split, prompt_suffix="")
    if modality != "motion":
        missing = sum(1 for item in items if not item.video)
        if missing:
            raise FileNotFoundError(
                f"{data}: {missing} of {len(items)} {split!r} questions have no rendered video; generate the suite "
                "with `generate_suite(..., render_videos=True)` (or `examples/make_motion_qa.py`) for video rows."
            )
    for item in items:
        if modality == "motion":
            item.video = None
        elif modality == "video":
            item.motion = None
    random.Random(seed).shuffle(items)
    choice = [item for item in items if item.meta["query_type"] in CHOICE_TYPES][:limit]
    counting = [item for item in items if item.meta["query_type"] == "count"][: max(1, limit // 3)]
    for item in counting:
        item.answer = int(item.answer)
    return choice, counting


def evaluate_split(predictor, data, split: str, output: str, limit: int = 300, seed: int = 0,
                   modality: str = "motion", batch_size: int = 16, plot: bool = True) -> dict:
    """Choice questions (BABEL-QA protocol) and counting (Mo-RepCount protocol) of one split, cached under `output`
    (an interrupted run resumes). Returns `{"qa": metrics, "counting": metrics}`."""
    with open(os.path.join(data, "metadata.json")) as f:
        suite_actions = json.load(f)["actions"]
    choice, counting = sample_items(data, split, limit, seed, modality)
    qa = run_evaluation(BabelQATask(extra_concepts={"action": suite_actions}), choice, predictor,
                        os.path.join(output, "babel_qa"), batch_size=batch_size,
                        plot_item="first" if plot else None)["metrics"]
    counts = run_evaluation(CountingTask(), counting, predictor, os.path.join(output, "counting"),
                            batch_size=batch_size)["metrics"]
    return {"qa": qa, "counting": counts}


def _scored_items(output: str, task: str) -> list[dict]:
    with open(os.path.join(output, task, "scored_items.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def choice_correctness(output: str, query_type: str | None = None) -> dict[str, bool]:
    """Question id -> whether the choice answer was right, from an `evaluate_split` output folder; only the
    questions of one `query_type` ("action", "direction", "body_part") when given."""
    return {row["id"]: bool(row["correct"]) for row in _scored_items(output, "babel_qa")
            if query_type is None or row["query_type"] == query_type}


def count_within_one(output: str) -> dict[str, bool]:
    """Counting question id -> whether the count read from the answer is off by at most one (OBO); an answer
    with no count in it is wrong."""
    return {row["id"]: row["extracted"] is not None and abs(row["extracted"] - row["answer"]) <= 1
            for row in _scored_items(output, "counting")}


# what a paired table can compare: its label -> id -> correct, read from an `evaluate_split` output folder
PAIRED_MEASURES = {
    "choice acc": choice_correctness,
    **{f"{kind.replace('_', ' ')} acc": functools.partial(choice_correctness, query_type=kind)
       for kind in ("action", "direction", "body_part")},
    "count OBO": count_within_one,
}


def paired_table(reference_label: str, reference_output: str, others: dict[str, str],
                 measure: str = "choice acc") -> str:
    """Markdown table of each model's `measure` (a key of `PAIRED_MEASURES`) against the reference's on the same
    questions (`paired_accuracy_difference`), e.g. every ablation variant against the full model."""
    correctness = PAIRED_MEASURES[measure]
    reference = correctness(reference_output)
    lines = [f"| variant | {measure} minus {reference_label}'s (points) | paired standard error | only "
             f"{reference_label} right | only the variant right | n |", "|---|---|---|---|---|---|"]
    for label, output in others.items():
        d = paired_accuracy_difference(reference, correctness(output))
        # the variant minus the reference; 0.0 - x so that a tie prints "+0.0", not "-0.0"
        lines.append(f"| {label} | {0.0 - 100 * d['difference']:+.1f} | {100 * d['standard_error']:.1f} | "
                     f"{d['only_reference']} | {d['only_other']} | {d['n']} |")
    return "\n".join(lines)


def asked_segments(data) -> dict[str, tuple[str, int]]:
    """Question id -> (the action of the segment whose attribute the question asks for, the number of actions in
    its clip), from a motion-QA suite folder (`question_segments`)."""
    return {question_id: (found["segments"][found["asked"]]["action"], len(found["segments"]))
            for question_id, found in question_segments(data).items()}


def accuracy_by_asked_action(output: str, data) -> str:
    """Markdown: choice accuracy per query type for each action asked about (e.g. direction questions about a turn
    vs about a kick), then per number of actions in the clip, from an `evaluate_split` output folder and the suite
    it was run on."""
    asked = asked_segments(data)
    kinds = ("action", "direction", "body_part")
    by_action: dict[str, dict[str, list[bool]]] = {}
    by_length: dict[int, dict[str, list[bool]]] = {}
    for row in _scored_items(output, "babel_qa"):
        action, num_actions = asked[row["id"]]
        for table, key in ((by_action, action), (by_length, num_actions)):
            table.setdefault(key, {}).setdefault(row["query_type"], []).append(bool(row["correct"]))

    def rows(table, first_column):
        lines = [f"| {first_column} | " + " | ".join(kind.replace("_", " ") for kind in kinds) + " |",
                 "|---|" + "---|" * len(kinds)]
        for key in sorted(table):
            hits = [table[key].get(kind, []) for kind in kinds]
            cells = (f"{sum(h) / len(h):.2f} ({len(h)})" if h else "-" for h in hits)
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        return lines

    return "\n".join(rows(by_action, "action asked about") + [""] + rows(by_length, "actions in the clip"))


def error_breakdown(output: str, data=None) -> str:
    """Where an `evaluate_split` run goes wrong, as markdown: how often each count was said against how often it
    was true, counting OBO per question (i.e. per action), and whether the wrong body-part answers name the right
    limb on the wrong side; given the suite folder `data`, also the accuracy by the action asked about and by the
    number of actions in the clip (`accuracy_by_asked_action`)."""
    counts = _scored_items(output, "counting")
    said_values = {row["extracted"] for row in counts if row["extracted"] is not None}
    values = sorted({row["answer"] for row in counts} | said_values)
    said = [sum(row["extracted"] == value for row in counts) for value in values]
    true = [sum(row["answer"] == value for row in counts) for value in values]
    unread = sum(row["extracted"] is None for row in counts)
    lines = ["| count | " + " | ".join(map(str, values)) + " | no count |", "|---|" + "---|" * (len(values) + 1),
             "| said | " + " | ".join(map(str, said)) + f" | {unread} |",
             "| true | " + " | ".join(map(str, true)) + " | - |"]
    by_question: dict[str, list[bool]] = {}  # the suite asks one counting question per action
    for row in counts:
        by_question.setdefault(row["question"], []).append(
            row["extracted"] is not None and abs(row["extracted"] - row["answer"]) <= 1)
    lines += ["", "| counting question | OBO (n) |", "|---|---|"]
    for question, hits in sorted(by_question.items(), key=lambda item: (-sum(item[1]) / len(item[1]), item[0])):
        lines.append(f"| {question} | {sum(hits) / len(hits):.2f} ({len(hits)}) |")
    wrong_parts = [row for row in _scored_items(output, "babel_qa")
                   if row["query_type"] == "body_part" and not row["correct"]]
    other_side = sum(1 for row in wrong_parts if row["extracted"] is not None
                     and row["extracted"].split()[-1] == row["answer"].split()[-1])
    lines += ["", f"Wrong body parts: {len(wrong_parts)}, of which {other_side} name the right limb on the wrong side."]
    if data is not None:
        lines += ["", "Choice accuracy by the action asked about:", "", accuracy_by_asked_action(output, data)]
    return "\n".join(lines)


def key_frame_placement(predictor, data, split: str, limit: int = 300, seed: int = 0, modality: str = "motion") -> str:
    """Markdown: where the Cross Talker's key frames (E6) fall for `split`'s first `limit` choice questions (the
    items `evaluate_split` scores), per relation: the share of the K key frames on the segment the question asks
    about, the same share among the frames the question picked (those not evenly spaced whatever the question,
    `num_coverage_frames`; "-" when every frame is evenly spaced), how many questions get none on the asked
    segment, the share on the segment(s) the question names, and the asked
    segment's share of the clip's length (what evenly spaced frames would put on it), and the longest stretch of
    the asked segment that no key frame falls in, as a share of the segment (about 1/m for m key frames on an
    even grid over it, 1 when none lands there: a count misses the repetitions in that stretch). A question about
    what comes *after* the squats names the squats and asks about the next action. A last row does the same for
    the sample's counting questions (the counted segment is the asked one). One forward pass per batch (the
    prefill), no generation."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    fps = suite_fps(data)
    found = question_segments(data)
    choice, counting = sample_items(data, split, limit, seed, modality)
    items = [item for item in choice + counting if item.id in found]
    by_relation: dict[str, list[tuple[float, float, float, float, float]]] = {}
    for start in tqdm(range(0, len(items), predictor.batch_size), desc=f"{split}: key frames", unit="batch"):
        batch = items[start:start + predictor.batch_size]
        inputs = predictor.model_inputs(batch)
        with torch.inference_mode():  # the selection is all it reads: one position's logits, not the prompt's
            output = predictor.model(**inputs, logits_to_keep=1)
        key_indices, evenly_spaced = output.key_frame_indices.cpu(), output.evenly_spaced_key_frames.cpu()
        times = inputs["frame_timestamps"].cpu()
        for clip, item in enumerate(batch):  # one clip per question
            question = found[item.id]
            frames = times[clip, key_indices[clip]].numpy() * fps  # key frames in the suite's frame numbers
            picked = frames[~evenly_spaced[clip].numpy()]

            def share(index, among=frames, segments=question["segments"]):
                if len(among) == 0:
                    return float("nan")
                return float(np.mean((among >= segments[index]["start_f"]) & (among < segments[index]["end_f"])))

            asked = question["segments"][question["asked"]]
            clip_length = question["segments"][-1]["end_f"] - question["segments"][0]["start_f"]
            length = asked["end_f"] - asked["start_f"]
            inside = np.sort(frames[(frames >= asked["start_f"]) & (frames < asked["end_f"])])
            unseen = np.diff(np.concatenate([[asked["start_f"]], inside, [asked["end_f"]]])).max() / length
            relation = "counting" if item.meta["query_type"] == "count" else question["relation"]
            by_relation.setdefault(relation, []).append((
                share(question["asked"]), share(question["asked"], among=picked),
                sum(share(index) for index in question["named"]), length / clip_length, unseen))
    lines = ["| relation | questions | key frames on the asked segment | question-picked ones on it | questions with "
             "none there | key frames on the named segment(s) | asked segment's share of the clip | longest "
             "stretch of it with no key frame |",
             "|---|---|---|---|---|---|---|---|"]
    for relation in ("no_relation", "before", "after", "in_between", "counting"):
        rows = np.array(by_relation.get(relation, []), dtype=float).reshape(-1, 5)
        if len(rows):
            picked = "-" if np.isnan(rows[:, 1]).all() else f"{np.nanmean(rows[:, 1]):.2f}"
            lines.append(f"| {relation.replace('_', ' ')} | {len(rows)} | {rows[:, 0].mean():.2f} | {picked} | "
                         f"{(rows[:, 0] == 0).mean():.2f} | {rows[:, 2].mean():.2f} | {rows[:, 3].mean():.2f} | "
                         f"{rows[:, 4].mean():.2f} |")
    return "\n".join(lines)


def count_head_readings(predictor, data, split: str, limit: int = 300, seed: int = 0, modality: str = "motion") -> dict:
    """The count head's own reading (`use_count_head`) of `split`'s counting questions (the ones `evaluate_split`
    asks: a third of `limit`), rounded to whole counts and scored as the answers are (`counting_metrics`: OBZ,
    OBO, relative MAE, RMSE), plus `"readings"` and `"counts"`. What the language model can copy from the last
    placeholder slot, so a gap between this and its answers is the language model's. One forward pass per batch
    (the prefill), no generation."""
    import torch
    from tqdm.auto import tqdm

    from .metrics import counting_metrics

    if not getattr(predictor.model.config, "use_count_head", False):
        raise ValueError("count_head_readings: the model has no count head (`use_count_head=False`).")
    counting = sample_items(data, split, limit, seed, modality)[1]
    readings = []
    for start in tqdm(range(0, len(counting), predictor.batch_size), desc=f"{split}: count head", unit="batch"):
        batch = counting[start:start + predictor.batch_size]
        with torch.inference_mode():
            output = predictor.model(**predictor.model_inputs(batch), logits_to_keep=1)
        readings += output.repetition_counts.float().cpu().tolist()
    counts = [float(item.answer) for item in counting]
    return {**counting_metrics([max(0, round(reading)) for reading in readings], counts), "readings": readings,
            "counts": counts}


PROBE_JITTERS = (0.05, 0.2)  # the asked segment's ends moved by up to these shares of its length


def _segment_frames(times, start, end):
    """Which of a clip's (valid) frames fall in `[start, end)`; a stretch shorter than the sampling step: the frame
    nearest its middle."""
    import torch

    inside = (times >= start) & (times < end)
    if not bool(inside.any()):
        inside = torch.zeros_like(inside)
        inside[(times - (start + end) / 2).abs().argmin()] = True
    return inside


def _probe_features(predictor, items, fps, found, frames: int = 32, seed: int = 0):
    """Per counting item, feature sets to read the count from: the Cross Talker's K key-frame features (what the
    projector hands the language model); the frame features it selects from (after the enhancer) at those K
    frames, before its context and fusion (E7-E11) work on them; and, each resampled to `frames` steps, those of
    the asked segment, of the asked segment with each end moved by a seeded up to +-`PROBE_JITTERS` of its length,
    of the stretch the question's scores cover (the outer quantiles of `key_frame_rule="score_span"`), of the
    asked-span head's run (`"head's span"`, models with `use_asked_span_head`) and of the whole clip; the true
    counts; and `"localisation"`, per item, for the score span and then the head's span: `(IoU with the asked
    segment, share of the asked segment inside it, 1 if each of its ends lies within PROBE_JITTERS[0] x the
    segment's length of the segment's own)`, and last 1 if the asked segment holds the most score mass of the
    clip's segments."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from modeling_llamo.modeling_llamo import heaviest_run, score_span_indices

    talker, seen, rng = predictor.model.model.cross_talker, {}, np.random.default_rng(seed)
    config = predictor.model.config
    span_count = max(1, config.num_key_frames - config.num_coverage_frames)

    def keep(module, args, output):
        seen["frames"], seen["mask"], seen["key"] = args[0].detach(), args[1].bool(), output.key_features.detach()
        seen["indices"], seen["scores"] = output.key_frame_indices.detach(), output.frame_scores.detach()
        seen["span_logits"] = None if output.asked_span_logits is None else output.asked_span_logits.detach()

    def resample(features):  # (t, d) -> (frames, d); a segment cut to one frame repeats it
        return F.interpolate(features.T[None].float(), size=frames, mode="linear", align_corners=True)[0].T.flatten()

    jittered = [f"asked segment, ends off by <= {share:.0%}" for share in PROBE_JITTERS]
    head = ["head's span"] if talker.asked_span_head is not None else []
    out = {name: [] for name in ("key frames", "picked frames", "asked segment", *jittered, "score span", *head,
                                 "whole clip", "count", "localisation")}
    handle = talker.register_forward_hook(keep)
    try:
        for start in tqdm(range(0, len(items), predictor.batch_size), desc="count probe", unit="batch"):
            batch = items[start:start + predictor.batch_size]
            inputs = predictor.model_inputs(batch)
            with torch.inference_mode():
                predictor.model(**inputs, logits_to_keep=1)
            times = inputs["frame_timestamps"].cpu() * fps  # in the suite's frame numbers
            for clip, item in enumerate(batch):
                valid = seen["mask"][clip].cpu()
                question = found[item.id]
                segment = question["segments"][question["asked"]]
                features, clip_times = seen["frames"][clip].cpu(), times[clip][valid]
                valid_features, scores = features[valid], seen["scores"][clip].cpu()[valid]
                out["key frames"].append(seen["key"][clip].cpu().flatten().float())
                out["picked frames"].append(features[seen["indices"][clip].cpu()].flatten().float())
                out["asked segment"].append(resample(valid_features[_segment_frames(clip_times, segment["start_f"],
                                                                                     segment["end_f"])]))
                length = segment["end_f"] - segment["start_f"]
                for name, share in zip(jittered, PROBE_JITTERS):
                    low, high = segment["start_f"] + rng.uniform(-share, share, size=2) * length + [0, length]
                    out[name].append(resample(valid_features[_segment_frames(clip_times, low, max(high, low + 1))]))
                clip_end = question["segments"][-1]["end_f"]

                def located(first, last):  # a span of valid frames: its IoU with the asked segment, its share of it
                    span_start, span_end = float(clip_times[first]), min(float(clip_times[last]) + 1, clip_end)
                    overlap = max(0.0, min(span_end, segment["end_f"]) - max(span_start, segment["start_f"]))
                    union = max(span_end, segment["end_f"]) - min(span_start, segment["start_f"])
                    ends_off = max(abs(span_start - segment["start_f"]), abs(span_end - segment["end_f"])) / length
                    return [overlap / union, overlap / length, float(ends_off <= PROBE_JITTERS[0])]

                ends = score_span_indices(scores[None], torch.ones(1, len(scores), dtype=torch.bool),
                                          min(span_count, len(scores)))[0]
                first, last = int(ends.min()), int(ends.max())
                out["score span"].append(resample(valid_features[first:last + 1]))
                localisation = located(first, last)
                if head:  # the asked-span head's run (`key_frame_rule="asked_span"`), whatever rule picks the frames
                    logits = seen["span_logits"][clip].cpu()[valid][None]
                    first, last = (int(end) for end in heaviest_run(torch.sigmoid(logits.float()) - 0.5,
                                                                    torch.ones_like(logits, dtype=torch.bool)))
                    out["head's span"].append(resample(valid_features[first:last + 1]))
                    localisation += located(first, last)
                out["whole clip"].append(resample(valid_features))
                out["count"].append(float(item.answer))
                masses = [float(scores[(clip_times >= other["start_f"]) & (clip_times < other["end_f"])].sum())
                          for other in question["segments"]]
                out["localisation"].append(localisation + [float(int(np.argmax(masses)) == question["asked"])])
    finally:
        handle.remove()
    if not out["count"]:
        return None
    return {name: torch.tensor(values) if name in ("count", "localisation") else torch.stack(values)
            for name, values in out.items()}


def count_probe(predictor, data, splits=("test",), train_limit: int = 1500, limit: int = 300, seed: int = 0,
                modality: str = "motion") -> str:
    """Markdown: where the repetition count is lost. Ridge regressions (a linear read-out, refit for each feature
    set of `_probe_features`) predict the count of the train split's first `train_limit` counting questions from
    (1) the K key-frame features the language model receives, (1b) the selectable frame features at those K
    frames, before the Cross Talker's context and fusion (E7-E11), (2) the selectable frame features of the
    segment the question asks about, (2b) the same with its ends a little off, (3) those of the stretch the
    question's scores cover and (4) those of the whole clip, the ridge strength chosen on the val split; scored on
    each of `splits`' counting questions (the ones `evaluate_split` asks: a third of `limit`) with OBO / exact /
    MAE. If (2) reads the count and (1) does not, the count is in the features but the key frames do not carry it
    to the model; (1b) says whether the picking (1b low too) or E7-E11 (1b high) loses it; (2b) how exactly a
    read-out needs the counted stretch's extent, and (3) with a second table how well the scores find it; a model
    with the asked-span head adds (3b), the frames of the run it marks, and its row in that table."""
    import torch

    fps = suite_fps(data)
    found = question_segments(data)

    def features(split, count_limit):
        counting = sample_items(data, split, 3 * count_limit, seed, modality)[1][:count_limit]
        return _probe_features(predictor, [item for item in counting if item.id in found], fps, found, seed=seed)

    train, val = features("train", train_limit), features("val", 400)
    scored = {split: features(split, max(1, limit // 3)) for split in splits}
    if train is None or any(part is None for part in scored.values()):
        raise ValueError(f"count_probe: {data} has no counting questions in its train split or one of {list(splits)}.")
    chosen_on = f"strength chosen on {len(val['count'])} val questions" if val is not None else "no val questions: strength 100"
    lines = [f"Ridge read-out of the count, fit on {len(train['count'])} train questions ({chosen_on}):", "",
             "| split | features | width | OBO | exact | MAE (n) |", "|---|---|---|---|---|---|"]
    mean_count = train["count"].mean()
    for name in (name for name in train if name not in ("count", "localisation")):
        center, scale = train[name].mean(0), train[name].std(0) + 1e-6
        x = ((train[name] - center) / scale).double()
        gram = x @ x.T

        def predict(part, strength):  # dual form: the train split is smaller than the feature width
            alpha = torch.linalg.solve(gram + strength * torch.eye(len(x), dtype=torch.float64),
                                       (train["count"] - mean_count).double())
            inputs = ((part[name] - center) / scale).double()
            return ((inputs @ x.T) @ alpha + mean_count).round().clamp(1, 12)

        strength = 100.0
        if val is not None:
            strength = max((10.0 ** power for power in range(0, 6)),
                           key=lambda s: ((predict(val, s) - val["count"]).abs() <= 1).double().mean().item())
        for split, part in scored.items():
            error = (predict(part, strength) - part["count"]).abs()
            lines.append(f"| {split} | {name} | {x.shape[1]} | {(error <= 1).double().mean():.3f} | "
                         f"{(error == 0).double().mean():.3f} | {error.mean():.2f} ({len(error)}) |")
    spans = ["score span"] + (["head's span"] if "head's span" in train else [])
    lines += ["", "How well the question's scores find the counted segment (the score span: from the frame at the "
              "score mass's 0.5 / (K - C) quantile to the one at 1 - 0.5 / (K - C))" + (
                  "; and the asked-span head (its span: the run of frames maximising the sum of p - 1/2)"
                  if len(spans) > 1 else "") + ":", "",
              "| split | questions | span | IoU with the asked segment | share of the asked segment inside it | both "
              f"ends within {PROBE_JITTERS[0]:.0%} of its length |", "|---|---|---|---|---|---|"]
    for split, part in scored.items():
        means = part["localisation"].mean(0).tolist()
        for index, span in enumerate(spans):
            iou, covered, ends = means[3 * index:3 * index + 3]
            lines.append(f"| {split} | {len(part['count'])} | {span} | {iou:.2f} | {covered:.2f} | {ends:.2f} |")
    lines += ["", "| split | asked segment holds the most score mass of the clip's segments (true boundaries) |",
              "|---|---|"]
    lines += [f"| {split} | {part['localisation'][:, -1].mean():.2f} |" for split, part in scored.items()]
    return "\n".join(lines)


def table_header(first_column: str = "split") -> str:
    columns = (first_column, *TABLE_COLUMNS)
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def table_row(label: str, result: dict) -> str:
    """One markdown row of `evaluate_split`'s result."""
    qa, counts = result["qa"], result["counting"]
    by_type, by_relation = qa["by_query_type"], qa["by_relation"]

    def acc(group, key):
        return f"{group[key]['accuracy']:.3f}" if key in group else "-"

    cells = [label, f"{qa['accuracy']:.3f} ({qa['total']})", acc(by_type, "action"), acc(by_type, "direction"),
             acc(by_type, "body_part"), acc(by_relation, "none"), acc(by_relation, "before"),
             acc(by_relation, "after"), acc(by_relation, "in_between"), f"{counts['obz']:.3f}", f"{counts['obo']:.3f}",
             f"{counts['mae']:.3f}", f"{counts['rmse']:.2f} ({counts['total']})"]
    return "| " + " | ".join(cells) + " |"


__all__ = ["CHOICE_TYPES", "MODALITIES", "PAIRED_MEASURES", "choice_correctness", "count_within_one",
           "count_head_readings", "error_breakdown", "evaluate_split", "key_frame_placement", "paired_table",
           "question_segments", "sample_items", "table_header", "table_row", "count_probe"]
