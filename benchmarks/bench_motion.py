# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Throughput of the motion processor's canonicalisation (docs/SPEC.md section 2).

Input: synthetic SMPL-H AMASS-style clips (``poses`` (T, 156), ``trans``, Z-up), no body model
(template skeleton), default representation ``smpl22_rot6d_joints`` (D=202). Goal: at least
20,000 output frames/s on the project's 2-core CPU, so motion preprocessing never limits a
data loader.

Run: ``python benchmarks/bench_motion.py`` (about 15 s). Prints one row per setting: output frames
per second (features produced) and input frames per second (source frames consumed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from processing_llamo.motion_processing_llamo import LlamoMotionProcessor  # noqa: E402

GOAL_FRAMES_PER_SECOND = 20_000


def amass_clip(rng: np.random.Generator, seconds: float, fps: float) -> dict:
    """A smooth random SMPL-H clip in AMASS layout."""
    frames = int(seconds * fps)
    t = np.arange(frames)[:, None] / fps
    poses = 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 2.0, (1, 156)) * t + rng.uniform(0, 6.3, (1, 156)))
    poses[:, 0] += np.pi / 2  # stand up in Z-up
    trans = np.concatenate([np.sin(t), np.cos(t), 0.9 + 0.0 * t], axis=1)
    return {"poses": poses.astype(np.float32), "trans": trans.astype(np.float32), "mocap_framerate": np.array(fps)}


def measure(processor: LlamoMotionProcessor, clips: list[dict], repeats: int) -> tuple[float, float, int]:
    """Best-of-``repeats`` time of one pass over ``clips`` through the full batch call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = processor(clips, return_tensors="np")
        best = min(best, time.perf_counter() - start)
    return best, out["motion_mask"].sum().item(), sum(len(c["poses"]) for c in clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    settings = [
        ("120 fps -> 30 fps (on source frames)", 120.0, 30.0, "smpl22_rot6d_joints"),
        ("50 fps -> 30 fps (slerp)", 50.0, 30.0, "smpl22_rot6d_joints"),
        ("30 fps -> 30 fps", 30.0, 30.0, "smpl22_rot6d_joints"),
        ("60 fps -> 30 fps, no joints", 60.0, 30.0, "smpl22_rot6d"),
        ("60 fps -> 30 fps, joints22 (FK)", 60.0, 30.0, "joints22"),
    ]
    print(f"{args.clips} SMPL-H AMASS-style clips x {args.seconds:g} s, template skeleton, best of {args.repeats}")
    header = f"{'setting':38s} {'repr':20s} {'out frames':>10s} {'seconds':>8s} {'out fr/s':>10s} {'in fr/s':>10s}"
    print(header)
    print("-" * len(header))
    for name, source_fps, target_fps, representation in settings:
        clips = [amass_clip(rng, args.seconds, source_fps) for _ in range(args.clips)]
        processor = LlamoMotionProcessor(representation=representation, motion_fps=target_fps, max_motion_frames=10**6)
        elapsed, produced, consumed = measure(processor, clips, args.repeats)
        flag = "" if produced / elapsed >= GOAL_FRAMES_PER_SECOND else "  < goal"
        print(
            f"{name:38s} {representation:20s} {produced:10d} {elapsed:8.3f} "
            f"{produced / elapsed:10,.0f} {consumed / elapsed:10,.0f}{flag}"
        )
    print(f"goal: >= {GOAL_FRAMES_PER_SECOND:,} output frames/s for the default representation")


if __name__ == "__main__":
    main()
