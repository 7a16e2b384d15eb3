"""Throughput of LLaMo's video path against bare PyAV decoding of the same frames.

    python benchmarks/bench_video.py [clip.mp4 ...] [--repeats 7]

Processor path: `LlamoFrameProcessor` (index by demuxing, seek, decode, convert straight to 224x224 RGB,
normalise into the float32 batch tensor). Baseline: plain PyAV decoding from the start through the last wanted
frame, keeping the wanted frames as native-size RGB arrays (no resize, no normalisation), the least a caller of
bare PyAV does without seeking. Both keep exactly the same frames. Goal: processor frames/s >= 0.8 x baseline.

Default clips: the shared 10 s Kinetics demo (mmaction2 demo.mp4, 280 frames, 4 keyframes) and a MotionGPT
render (768x768, 84 frames, 1 keyframe).
"""

import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processing_llamo import LlamoFrameProcessor, select_frame_indices  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIPS = [
    Path("/work/shared/data/videos/mmaction2/demo.mp4"),
    ROOT / "tests" / "fixtures" / "videos" / "example1.mp4",
]


def bare_pyav(path: Path, wanted: set) -> int:
    """Decode sequentially and convert only the wanted frames (by presentation order)."""
    kept = []
    last = max(wanted)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                kept.append(frame.to_ndarray(format="rgb24"))
            if index >= last:
                break
    return len(kept)


def frame_times(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(packet.pts for packet in container.demux(stream) if packet.size)
        return (np.asarray(pts) - pts[0]) * float(stream.time_base)


def timed_pair(first, second, repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` seconds of two functions, run alternately so that load from other processes on the
    machine hits both alike; the minimum is the least noisy estimate of the intrinsic cost."""
    first(), second()  # warm-up (file cache, codec init)
    samples = ([], [])
    for _ in range(repeats):
        for function, bucket in zip((first, second), samples):
            start = time.perf_counter()
            function()
            bucket.append(time.perf_counter() - start)
    return min(samples[0]), min(samples[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    settings = [("16 frames", 16, None), ("32 frames", 32, None), ("2 fps", 64, 2.0)]
    header = f"{'clip':<14}{'sampling':<11}{'kept':>5}{'PyAV fps':>11}{'LLaMo fps':>11}{'ratio':>8}{'LLaMo ms':>10}"
    print(header)
    print("-" * len(header))
    for clip in args.clips:
        if not clip.is_file():
            print(f"{clip.name:<14}missing, skipped")
            continue
        times = frame_times(clip)
        for label, num_frames, fps in settings:
            processor = LlamoFrameProcessor(size=224, num_frames=num_frames, video_fps=fps)
            indices = select_frame_indices(times, num_frames, fps)
            wanted = set(int(i) for i in indices)
            baseline, ours = timed_pair(lambda: bare_pyav(clip, wanted), lambda: processor(str(clip)), args.repeats)
            kept = len(indices)
            print(
                f"{clip.name:<14}{label:<11}{kept:>5}{kept / baseline:>11.0f}{kept / ours:>11.0f}"
                f"{baseline / ours:>8.2f}{ours * 1000:>10.1f}"
            )


if __name__ == "__main__":
    main()
