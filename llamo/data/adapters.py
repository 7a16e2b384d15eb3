"""Adapters from public dataset layouts to LLaMo conversation rows (`llamo.data.conversations`).

Supported layouts
-----------------
**HumanML3D** (`humanml3d_conversations`)::

    <root>/train.txt, val.txt, test.txt       one motion id per line
    <root>/texts/<id>.txt                     lines "caption#tokens#start#end" (start/end in seconds, 0 = whole clip)
    <root>/new_joints/<id>.npy                (T, 22, 3) joint positions, SMPL order, 20 fps
    <root>/new_joint_vecs/<id>.npy            (T, 263) HumanML3D features, 20 fps

Each caption becomes one instruction pair: a describe-the-motion instruction (drawn deterministically from
`CAPTION_INSTRUCTIONS` by id and caption index) with the motion, and the caption as the answer. Which motion file
is used follows the checkpoint's motion representation: `new_joints` for `joints22`, `new_joint_vecs` for
`humanml3d_263`. The rotation representations (`smpl22_rot6d*`) need SMPL rotations, which HumanML3D's files don't
hold: train those checkpoints from the AMASS originals (HumanML3D's `index.csv` maps ids to AMASS files) through the
generic JSONL format. Captions of a sub-span (`start`/`end` != 0) are skipped unless `crop_dir` is given, where
the cropped motions are written once (`<id>_<start>_<end>.npy`), as HumanML3D's own loader does.

**KIT-ML** (`kitml_conversations`): the same text/split layout, but its motions are a 21-joint KIT skeleton
(`new_joints` (T, 21, 3), `new_joint_vecs` (T, 251), 12.5 fps), which LLaMo's motion processor does not read (it
takes SMPL-22 joint order). Supported: the captions and splits, with motions from `motion_dir` holding 22-joint
SMPL-order `.npy` files (or AMASS `.npz` files, KIT-ML being a subset of AMASS) under the same ids. Pointing it at
21-joint files raises a clear error.

**BABEL-QA** (`babel_qa_conversations`): `questions.json` + `split_question_ids.json` +
`motion_sequences/<babel_id>/{joints.npy, pose.npz}`, read through `llamo.data.motion_qa.load_babel_qa` (the loader
the evaluation harness uses; it also reads the procedurally generated suite of the same layout). Rows keep `query_type` / `relation_type` / `answer` in their metadata,
so generation-based evaluation can score answers against BABEL-QA's closed vocabularies.
"""

from __future__ import annotations

import json
import logging
import os
import zlib

import numpy as np

from ..evaluation.answers import count_in_words
from .conversations import records_to_dataset

logger = logging.getLogger(__name__)

# how `babel_qa_conversations` writes a counting question's target: as the suite has it ("7") or spelled out
COUNT_ANSWER_STYLES = ("digits", "words")

HUMANML3D_FPS = 20.0
KITML_FPS = 12.5
BABEL_QA_FPS = 30.0  # BABEL-QA's joints.npy are AMASS motions resampled to 30 fps by its generator

CAPTION_INSTRUCTIONS = (
    "Describe the motion.",
    "What is the person doing?",
    "Describe what the person does in this motion.",
    "Give a short description of the movement.",
    "Explain the human motion you observe.",
    "What action is being performed?",
    "Summarize the person's movement in one sentence.",
    "How does the person move?",
)


def _read_split(root: str, split: str) -> list[str]:
    path = os.path.join(root, f"{split}.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Split file not found: {path} (expected train.txt / val.txt / test.txt in {root}).")
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def read_captions(path: str) -> list[dict]:
    """HumanML3D/KIT-ML `texts/<id>.txt`: `[{"caption", "tokens", "start", "end"}]` (start/end in seconds, 0 = whole)."""
    captions = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            parts = line.split("#")
            caption = parts[0].strip()
            tokens = parts[1] if len(parts) > 1 else ""
            start = float(parts[2]) if len(parts) > 2 and parts[2].strip() not in ("", "nan") else 0.0
            end = float(parts[3]) if len(parts) > 3 and parts[3].strip() not in ("", "nan") else 0.0
            if caption:
                captions.append({"caption": caption, "tokens": tokens, "start": start, "end": end})
    return captions


def _instruction(motion_id: str, index: int, instructions) -> str:
    return instructions[zlib.crc32(f"{motion_id}:{index}".encode()) % len(instructions)]


def _caption_rows(root, split, motion_dir, motion_ext, fps, dataset_name, instructions, crop_dir, max_captions):
    rows = []
    for motion_id in _read_split(root, split):
        text_path = os.path.join(root, "texts", f"{motion_id}.txt")
        motion_path = os.path.join(motion_dir, f"{motion_id}{motion_ext}")
        if not os.path.isfile(text_path):
            logger.warning("%s: no captions for %s (%s), skipped.", dataset_name, motion_id, text_path)
            continue
        captions = read_captions(text_path)
        if max_captions is not None:
            captions = captions[:max_captions]
        for index, item in enumerate(captions):
            path = motion_path
            if item["start"] != 0.0 or item["end"] != 0.0:
                if crop_dir is None:
                    continue
                path = _crop(motion_path, item["start"], item["end"], fps, crop_dir, motion_id)
                if path is None:
                    continue
            rows.append({
                "id": f"{dataset_name}/{split}/{motion_id}/{index}",
                "messages": [
                    {"role": "user", "content": [
                        _motion_block(path, fps=fps),
                        _text_block(_instruction(motion_id, index, instructions)),
                    ]},
                    {"role": "assistant", "content": [_text_block(item["caption"])]},
                ],
                "metadata": json.dumps({"dataset": dataset_name, "motion_id": motion_id, "task": "caption",
                                        "start": item["start"], "end": item["end"]}),
            })
    return rows


def _crop(motion_path, start, end, fps, crop_dir, motion_id):
    out = os.path.join(crop_dir, f"{motion_id}_{start:g}_{end:g}.npy")
    if os.path.isfile(out):
        return out
    if not os.path.isfile(motion_path):
        return motion_path  # reported as missing by the loader
    motion = np.load(motion_path, allow_pickle=False)
    piece = motion[int(start * fps) : int(end * fps)]
    if len(piece) < 2:
        return None
    os.makedirs(crop_dir, exist_ok=True)
    np.save(out, piece)
    return out


def humanml3d_conversations(
    root: str,
    split: str = "train",
    representation: str = "joints22",
    instructions=CAPTION_INSTRUCTIONS,
    crop_dir: str | None = None,
    max_captions: int | None = None,
    on_error: str = "raise",
):
    """HumanML3D captions as instruction pairs (module docstring); returns a `datasets.Dataset` of conversation rows.

    Args:
        representation: the checkpoint's motion representation (`processor.motion_processor.representation`);
            picks `new_joints` (`joints22`) or `new_joint_vecs` (`humanml3d_263`).
        crop_dir: where to write sub-span crops; `None` skips sub-span captions.
        max_captions: at most this many captions per motion (all by default).
    """
    sources = {"joints22": "new_joints", "humanml3d_263": "new_joint_vecs"}
    if representation not in sources:
        raise ValueError(
            f"HumanML3D provides joint positions and 263-d features, not SMPL rotations, so it can't feed a checkpoint "
            f"with motion representation {representation!r}. Use a 'joints22' or 'humanml3d_263' checkpoint, or the "
            "AMASS originals (HumanML3D's index.csv) through the JSONL format."
        )
    rows = _caption_rows(root, split, os.path.join(root, sources[representation]), ".npy", HUMANML3D_FPS, "humanml3d",
                         instructions, crop_dir, max_captions)
    return records_to_dataset(rows, on_error=on_error)


def kitml_conversations(
    root: str,
    split: str = "train",
    motion_dir: str | None = None,
    motion_ext: str = ".npy",
    motion_fps: float | None = KITML_FPS,
    instructions=CAPTION_INSTRUCTIONS,
    max_captions: int | None = None,
    on_error: str = "raise",
):
    """KIT-ML captions as instruction pairs, with motions from `motion_dir` in an SMPL-22 format (module docstring).

    `motion_fps` is the frame rate of those files (`None` for AMASS `.npz`, which store their own).
    """
    motion_dir = motion_dir or os.path.join(root, "new_joints")
    rows = _caption_rows(root, split, motion_dir, motion_ext, motion_fps, "kitml", instructions, None, max_captions)
    for row in rows[:1]:
        path = row["messages"][0]["content"][0]["path"]
        if path.endswith(".npy") and os.path.isfile(path):
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            if len(shape) == 3 and shape[1] == 21 or len(shape) == 2 and shape[1] == 251:
                raise ValueError(
                    f"{path}: KIT-ML's own motions use a 21-joint KIT skeleton (shape {shape}), which LLaMo's motion "
                    "processor does not read (SMPL-22 joint order). Pass motion_dir= a folder of SMPL-22 joints "
                    "(T, 22, 3) or AMASS .npz files named by the same ids."
                )
    return records_to_dataset(rows, on_error=on_error)


def babel_qa_conversations(
    root: str,
    split: str = "train",
    representation: str = "smpl22_rot6d_joints",
    use_video: bool = False,
    on_error: str = "raise",
    use_motion: bool = True,
    count_answers: str = "digits",
    focus: bool = False,
):
    """BABEL-QA questions as conversation rows, read with `llamo.data.motion_qa.load_babel_qa` (the evaluation
    harness's loader, so training and evaluation see the same questions).

    The motion of each question is `motion_sequences/<babel_id>/pose.npz` (SMPL rotations, AMASS style, its own fps)
    for the rotation representations, and `joints.npy` (T, 22, 3), Z-up at 30 fps, for `joints22`. With
    `use_video=True` a rendered `video.mp4`/`.webm` next to it joins the clip; `use_motion=False` leaves the motion
    out (video-only rows; then every question needs its video). Metadata keeps `query_type`,
    `relation_type` and the gold `answer`, so generation-based evaluation scores with BABEL-QA's closed vocabularies.
    `count_answers="words"` spells the target of a counting question out ("7" -> "seven",
    `llamo.evaluation.answers.count_in_words`); the metadata keeps the gold answer as written in the suite.
    `focus=True` adds `focus_seconds` to the metadata of every question that names a segment: the `[start, end)`
    spans of the segments it is about (`llamo.data.motion_qa.question_focus_seconds`), which
    `LlamoDataCollator(key_frame_targets=True)` turns into the key-frame grounding loss's targets; and
    `asked_seconds`, the span of the segment it asks about alone, which `LlamoDataCollator(asked_frame_targets=True)`
    turns into the asked-span head's targets.
    """
    from .motion_qa import load_babel_qa, question_focus_seconds

    if representation == "humanml3d_263":
        raise ValueError("BABEL-QA has SMPL poses and joints, not HumanML3D 263-d features; use another representation.")
    if not (use_motion or use_video):
        raise ValueError("babel_qa_conversations: a question needs its motion, its video or both.")
    if count_answers not in COUNT_ANSWER_STYLES:
        raise ValueError(f"count_answers must be one of {COUNT_ANSWER_STYLES}, got {count_answers!r}")
    focus_seconds = question_focus_seconds(root, fps=BABEL_QA_FPS) if focus else {}
    asked_seconds = question_focus_seconds(root, fps=BABEL_QA_FPS, asked_only=True) if focus else {}
    rows = []
    for item in load_babel_qa(root, split):
        item = _as_dict(item)
        if representation == "joints22" or not item.get("pose_path"):
            motion = _motion_block(item["motion_path"], fps=BABEL_QA_FPS, up_axis="z")
        else:
            motion = _motion_block(item["pose_path"])  # AMASS-style npz: Z-up and its own fps, the format's defaults
        clip = [motion] if use_motion else []
        if use_video and item.get("video_path"):
            clip = [{"type": "video", "text": None, "path": os.path.abspath(item["video_path"]), "fps": None, "up_axis": None}] + clip
        elif not use_motion:
            raise FileNotFoundError(f"Question {item['question_id']} ({root}) has no rendered video for a video-only row.")
        metadata = {key: item.get(key) for key in ("query_type", "relation_type", "answer", "babel_id", "question_id")}
        metadata["dataset"] = "babel_qa"
        if item["question_id"] in focus_seconds:
            metadata["focus_seconds"] = focus_seconds[item["question_id"]]
            metadata["asked_seconds"] = asked_seconds[item["question_id"]]
        rows.append({
            "id": f"babel_qa/{split}/{item['question_id']}",
            "messages": [
                {"role": "user", "content": clip + [_text_block(str(item["question"]))]},
                {"role": "assistant", "content": [_text_block(_target_answer(item, count_answers))]},
            ],
            "metadata": json.dumps(metadata, default=str),
        })
    if not rows:
        raise ValueError(f"{root} holds no BABEL-QA questions in split {split!r} (a small suite can leave a split "
                         "empty); pick another split.")
    return records_to_dataset(rows, on_error=on_error)


def _target_answer(item: dict, count_answers: str) -> str:
    """The assistant turn a question trains towards: the suite's answer, a count spelled out if asked for."""
    if count_answers == "words" and item.get("query_type") == "query_count":
        return count_in_words(int(item["answer"]))
    return str(item["answer"])


def _motion_block(path, fps=None, up_axis=None) -> dict:
    return {"type": "motion", "text": None, "path": os.path.abspath(str(path)), "fps": fps, "up_axis": up_axis}


def _text_block(text: str) -> dict:
    return {"type": "text", "text": text, "path": None, "fps": None, "up_axis": None}


def _as_dict(item) -> dict:
    if isinstance(item, dict):
        return item
    if hasattr(item, "_asdict"):
        return item._asdict()
    if hasattr(item, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(item)
    return dict(vars(item))


__all__ = [
    "CAPTION_INSTRUCTIONS",
    "babel_qa_conversations",
    "humanml3d_conversations",
    "kitml_conversations",
    "read_captions",
]
