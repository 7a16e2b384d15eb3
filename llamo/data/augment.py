# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Training-time augmentations of conversations, applied by `LlamoDataCollator(augment=...)` before encoding.

An augmentation maps one conversation (chat messages, as `to_chat_messages` writes them) to another, media and
text changed together so that the answer stays true.

`MirrorMotion` reflects the person left-to-right and swaps "left" and "right" in every text block. The demo model
names the right limb on the wrong side in most of its body-part errors; a mirrored pair of conversations differs in
nothing but the side, so a model can only fit both by reading the side from the motion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from processing_llamo.skeleton import mirror_joints

__all__ = ["MirrorMotion", "swap_sides"]

_SIDE_WORD = re.compile(r"\b(left|right)\b", re.IGNORECASE)
_OTHER_SIDE = {"left": "right", "right": "left"}


def swap_sides(text: str) -> str:
    """Swaps "left" and "right" as whole words, keeping their case ("Left" -> "Right", "LEFT" -> "RIGHT")."""

    def other(match):
        word = match.group(0)
        swapped = _OTHER_SIDE[word.lower()]
        if word.isupper():
            return swapped.upper()
        return swapped.capitalize() if word[0].isupper() else swapped

    return _SIDE_WORD.sub(other, text)


@dataclass
class MirrorMotion:
    """With probability `probability`, a conversation whose clips are all motion is replaced by its mirror image.

    Each motion is read to joint positions through the processor's own conversions (any format it reads), mirrored
    (`processing_llamo.skeleton.mirror_joints`: x negated, left and right joints swapped) and handed on as a joints
    array; every text block, answers included, has "left" and "right" swapped. Conversations with a video are left
    as they are (their frames would have to be flipped too). Needs a processor with representation `joints22`,
    the only one computed from joint positions alone.

    Args:
        motion_processor: the `LlamoMotionProcessor` (`processor.feature_extractor`) the collator encodes with.
        probability: chance of mirroring each eligible conversation.
        seed: seed of the draws, so a training run is repeatable (each `DataLoader` worker draws from its own
            stream, seeded with `(seed, worker id + 1)`; a run resumed from a checkpoint draws afresh).
        body_model: body model for SMPL-parameter motions (template skeleton when `None`), as the processor's.

    Attributes:
        mirrored, seen: conversations mirrored / eligible so far (for logs and the training recipe; counted in the
            process that collates).
    """

    motion_processor: object
    probability: float = 0.5
    seed: int = 0
    body_model: object = None
    mirrored: int = field(default=0, init=False)
    seen: int = field(default=0, init=False)

    def __post_init__(self):
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"MirrorMotion: probability must be in [0, 1], got {self.probability}.")
        representation = getattr(self.motion_processor, "representation", None)
        if representation != "joints22":
            raise ValueError(
                f"MirrorMotion mirrors joint positions, so it needs a processor with representation 'joints22' "
                f"(this one has {representation!r}, whose features need joint rotations)."
            )
        self._rng, self._worker = None, None

    def _draw(self) -> float:
        # DataLoader workers each hold a copy of the collator: give each its own stream (the main process: `seed`).
        worker = torch.utils.data.get_worker_info()
        worker_id = None if worker is None else worker.id
        if self._rng is None or worker_id != self._worker:
            # [seed, id + 1]: numpy's SeedSequence reads [seed, 0] as plain seed, which would give worker 0 the
            # main process's stream.
            self._rng = np.random.default_rng(self.seed if worker_id is None else [self.seed, worker_id + 1])
            self._worker = worker_id
        return float(self._rng.random())

    def __call__(self, messages: list[dict]) -> list[dict]:
        blocks = [block for message in messages if isinstance(message["content"], list)
                  for block in message["content"] if isinstance(block, dict)]
        kinds = {block.get("type") for block in blocks}
        if "motion" not in kinds or "video" in kinds or any("video" in block for block in blocks):
            return messages
        self.seen += 1
        if self._draw() >= self.probability:
            return messages
        self.mirrored += 1
        return [{**message, "content": self._mirror_content(message["content"])} for message in messages]

    def _mirror_content(self, content):
        if isinstance(content, str):  # a plain-text message
            return swap_sides(content)
        return [self._mirror_block(block) for block in content]

    def _mirror_block(self, block):
        if not isinstance(block, dict):
            return block
        if block.get("type") == "text":
            return {**block, "text": swap_sides(block.get("text") or "")}
        if block.get("type") != "motion":
            return block
        source = block["motion"] if "motion" in block else block["path"]
        joints, fps = self.motion_processor.motion_joints(
            source, fps=block.get("fps"), format=block.get("format"), body_model=self.body_model,
            up_axis=block.get("up_axis"),
        )
        # motion_joints gives Y-up positions, so x is horizontal: a left-right mirror.
        mirrored = mirror_joints(joints, axis=0)
        return {"type": "motion", "motion": mirrored, "fps": fps, "format": "joints", "up_axis": "y"}
