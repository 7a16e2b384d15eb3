"""Video decoding and frame sampling for LLaMo, on PyAV only.

Why not the video stack of transformers: `BaseVideoProcessor`/`AutoVideoProcessor`, torchvision and torchcodec
do not import in this project's environment (see docs/STACK.md), and `transformers.video_utils.load_video`
decodes every frame of the clip before sampling. LLaMo looks at 16-32 frames of clips that may last minutes,
so this module decodes only what it keeps:

1. *Index*: the container is demuxed once (packets are read, none is decoded) to get the exact presentation
   time of every frame and where the keyframes are. Cheap (milliseconds for a 10 s clip) and exact for
   variable frame rates, unlike `stream.frames`/`average_rate`, which are estimates or zero for webm.
2. *Select*: frame indices are chosen uniformly (`num_frames`) or on a time grid (`fps`); see
   `select_frame_indices`.
3. *Decode*: for each wanted frame the decoder seeks to the keyframe at or before it, unless the frame can be
   reached by decoding forward without passing a keyframe (then seeking would only redo work), and decodes
   forward to the wanted presentation time.
4. *Convert*: each kept frame goes straight from the decoder's YUV to RGB at the target size in one swscale
   call (bilinear, one scaling context reused across the clip), so memory is `num_frames x target size`, never
   the clip at full resolution.

Inputs: a path (anything FFmpeg demuxes: mp4, webm, mov, avi, mkv...), raw bytes or a binary file object,
a uint8 array (T, H, W, 3) (numpy or torch) or a list of PIL images. In-memory frames carry no clock, so
their timestamps use `input_fps` (default `DEFAULT_ARRAY_FPS`).

Every failure that comes from the input (unreadable, truncated, no video stream, zero frames, bad sampling
arguments) raises `ValueError` with the input named, so a data-loading loop can report the offending file.

This file is copied flat next to `processing_llamo.py` by `save_pretrained` for `trust_remote_code` loading:
keep its imports relative and its optional dependencies guarded.
"""

from __future__ import annotations

import bisect
import io
import math
import os
from typing import NamedTuple, Union

import numpy as np
import torch

try:  # optional at import time so that tokenizer-only use of the processor works without PyAV
    import av
    from av.video.reformatter import VideoReformatter
except ImportError:  # pragma: no cover - exercised only without PyAV
    av = VideoReformatter = None

try:
    from PIL import Image
except ImportError:  # pragma: no cover
    Image = None


DEFAULT_ARRAY_FPS = 30.0
"""Frame rate assumed for in-memory frames (arrays, PIL lists) when the caller gives none. 30 fps is the rate
of most consumer video and the default `motion_fps` of the motion processor, so timelines line up by default."""

_TIME_EPS = 1e-6  # seconds; absorbs float error when a sampling-grid point lands exactly on a frame time

VideoSource = Union[str, os.PathLike, bytes, bytearray, io.IOBase, np.ndarray, torch.Tensor, list]


class DecodedVideo(NamedTuple):
    """Frames kept from one clip.

    Attributes:
        frames (`np.ndarray` of shape (T, H, W, 3), uint8): RGB frames, already at the requested size if any.
        timestamps (`np.ndarray` of shape (T,), float64): presentation time of each frame in seconds, counted
            from the clip's first frame.
    """

    frames: np.ndarray
    timestamps: np.ndarray


# --------------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------------


def uniform_indices(num_available: int, num_frames: int | None) -> np.ndarray:
    """`num_frames` indices spread evenly over `range(num_available)`, first and last frame included.

    The ends are included (rather than segment centres) so that what happens at the very start or end of a
    motion is visible. Frames are never duplicated: a clip shorter than `num_frames` returns all its frames,
    and the caller pads (the frame mask says which entries are real).
    """
    if num_frames is None or num_frames >= num_available:
        return np.arange(num_available)
    if num_frames == 1:
        return np.array([num_available // 2])
    # The step is >= 1 here, so rounding keeps the indices distinct and sorted.
    return np.round(np.linspace(0, num_available - 1, num_frames)).astype(np.int64)


def select_frame_indices(times: np.ndarray, num_frames: int | None = None, fps: float | None = None) -> np.ndarray:
    """Choose which frames to keep, given every frame's time in seconds (sorted).

    - `fps is None`: `num_frames` frames uniformly over the clip (all frames if `num_frames` is None).
    - `fps` given: one frame per `1 / fps` seconds, each the frame on screen at that instant (the latest frame
      starting at or before it). Asking for more than the native rate does not invent frames: repeats are
      dropped. `num_frames`, if given, then caps the count (uniform subsampling of the grid), which bounds
      memory for long clips.
    """
    num_available = len(times)
    if fps is None:
        return uniform_indices(num_available, num_frames)
    span = float(times[-1] - times[0])
    grid = times[0] + np.arange(int(math.floor(span * fps + _TIME_EPS)) + 1) / fps
    indices = np.searchsorted(times, grid + _TIME_EPS, side="right") - 1
    indices = np.unique(np.clip(indices, 0, num_available - 1))
    if num_frames is not None and len(indices) > num_frames:
        indices = indices[uniform_indices(len(indices), num_frames)]
    return indices


def _check_sampling(name: str, num_frames, fps, input_fps) -> None:
    if num_frames is not None and (
        isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1
    ):
        raise ValueError(f"Cannot sample video {name}: `num_frames` must be a positive integer, got {num_frames!r}.")
    for arg_name, value in (("fps", fps), ("input_fps", input_fps)):
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.number))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"Cannot sample video {name}: `{arg_name}` must be a finite number > 0, got {value!r}.")


def _normalize_size(size) -> tuple[int, int] | None:
    """Accept `None`, an int (square), `(height, width)` or `{"height": h, "width": w}`."""
    if size is None:
        return None
    if isinstance(size, dict):
        height, width = size["height"], size["width"]
    elif isinstance(size, int):
        height = width = size
    else:
        height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"Frame size must be positive, got {size!r}.")
    return int(height), int(width)


def describe_video(video) -> str:
    """Short name of a video input for error messages: the path when there is one."""
    if isinstance(video, (str, os.PathLike)):
        return repr(os.fspath(video))
    if isinstance(video, (bytes, bytearray)):
        return f"<{len(video)} bytes of video>"
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return f"<frame array of shape {tuple(video.shape)}>"
    if isinstance(video, (list, tuple)):
        return f"<list of {len(video)} frames>"
    return repr(getattr(video, "name", None) or f"<{type(video).__name__}>")


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def read_video(
    video: VideoSource,
    num_frames: int | None = None,
    fps: float | None = None,
    size=None,
    input_fps: float | None = None,
) -> DecodedVideo:
    """Decode and sample one clip.

    Args:
        video: a path, raw bytes / binary file object, a uint8 array (T, H, W, 3) (numpy or torch) or a list of
            PIL images.
        num_frames: how many frames to keep (uniform), or the cap when `fps` is given. `None`: no cap.
        fps: sample one frame every `1 / fps` seconds instead of a fixed count.
        size: output frame size, `(height, width)`, an int or `{"height", "width"}`; `None` keeps the native size.
            Resizing is bilinear with antialiasing (swscale for files, torch/PIL for in-memory frames).
        input_fps: frame rate of in-memory frames (ignored for encoded video, which carries its own clock).

    Returns:
        `DecodedVideo(frames, timestamps)`.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the input is unreadable, truncated, has no video stream or no frames, or a sampling
            argument is invalid. The message names the input.
    """
    name = describe_video(video)
    _check_sampling(name, num_frames, fps, input_fps)
    target_size = _normalize_size(size)

    if isinstance(video, torch.Tensor):
        video = video.detach().cpu().numpy()
    if isinstance(video, np.ndarray):
        return _read_array(video, name, num_frames, fps, target_size, input_fps)
    if isinstance(video, (list, tuple)):
        return _read_images(video, name, num_frames, fps, target_size, input_fps)
    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Video file not found: {path!r}")
        return _read_encoded(path, name, num_frames, fps, target_size)
    if isinstance(video, (bytes, bytearray)):
        return _read_encoded(io.BytesIO(bytes(video)), name, num_frames, fps, target_size)
    if hasattr(video, "read"):
        return _read_encoded(video, name, num_frames, fps, target_size)
    raise TypeError(
        f"Unsupported video input of type {type(video).__name__}: expected a path, bytes, a uint8 array "
        "(T, H, W, 3) or a list of PIL images."
    )


# --------------------------------------------------------------------------------------------------------------
# Encoded video (PyAV)
# --------------------------------------------------------------------------------------------------------------


class _StreamIndex(NamedTuple):
    pts: np.ndarray  # presentation timestamps of all frames, sorted, in stream time_base units
    keyframes: list  # sorted presentation timestamps of the keyframes (the seek targets)
    time_base: float


def _read_encoded(source, name: str, num_frames, fps, size) -> DecodedVideo:
    if av is None:
        raise ImportError("Decoding video files needs PyAV: `pip install av`.")
    try:
        container = av.open(source, mode="r")
    except av.FFmpegError as err:
        raise ValueError(f"Could not open video {name}: {err}") from err
    with container:
        if not container.streams.video:
            raise ValueError(f"Video {name} has no video stream (streams: {[s.type for s in container.streams]}).")
        stream = container.streams.video[0]
        # PyAV's default threading is kept: frame threading ("AUTO") measured slower on the 2 shared cores of
        # this project's machines (each seek flushes the frame threads), see benchmarks/bench_video.py.
        index = _index_stream(container, stream, name)
        times = (index.pts - index.pts[0]) * index.time_base
        keep = select_frame_indices(times, num_frames, fps)
        frames = _decode_frames(container, stream, index, index.pts[keep], size, name)
    return DecodedVideo(frames, times[keep])


def _index_stream(container, stream, name: str) -> _StreamIndex:
    """Demux (without decoding) to list every frame's presentation time and the keyframes."""
    pts, keyframes = [], set()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end of the stream
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                raise ValueError(f"Video {name} has packets without timestamps; remux it (e.g. to mp4) first.")
            pts.append(stamp)
            if packet.is_keyframe:
                keyframes.add(stamp)
    except av.FFmpegError as err:
        raise ValueError(f"Video {name} is corrupted or truncated (demuxing failed: {err}).") from err
    if not pts:
        raise ValueError(f"Video {name} contains no frames.")
    container.seek(0)  # rewind for decoding; the demuxer is at the end of the file
    pts_array = np.unique(np.asarray(pts, dtype=np.int64))
    # No keyframe flags at all: a decode from the start is the only safe plan.
    keyframes = sorted(keyframes) or [int(pts_array[0])]
    time_base = float(stream.time_base) if stream.time_base is not None else 1.0 / float(stream.guessed_rate or 1)
    return _StreamIndex(pts_array, keyframes, time_base)


def _decode_frames(container, stream, index: _StreamIndex, wanted: np.ndarray, size, name: str) -> np.ndarray:
    """Decode the frames whose pts are in `wanted` (sorted), seeking only when it skips work.

    Seeking asks for the keyframe's presentation time (backward). Demuxers that index by presentation time (mp4,
    mkv/webm) land exactly on it (asking for its dts, which is earlier with B-frames, lands a whole GOP early in
    mp4); demuxers that index by decode time land on it too, since a keyframe's dts <= its pts. Should a demuxer
    still land past the wanted frame, the previous keyframe is tried.
    """
    keyframes = index.keyframes
    out = None if size is None else np.empty((len(wanted), size[0], size[1], 3), dtype=np.uint8)
    kept = [] if size is None else None
    # One reformatter for the whole clip: `frame.to_ndarray(width=..., height=...)` builds a fresh swscale
    # context (scaling filter tables included) for every frame, which cost about as much as the scaling itself
    # (768x768 -> 224x224, 32 frames: the conversion took ~33 ms per clip that way and ~16 ms with one context, in
    # a one-off profile; benchmarks/bench_video.py's ratio for that clip went from 0.72 to 0.94). One thread: data
    # loaders parallelise across clips, and on 2 cores threaded scaling measured no faster.
    reformatter = VideoReformatter()
    convert = {"format": "rgb24", "threads": 1}
    if size is not None:
        convert.update(height=size[0], width=size[1], interpolation="BILINEAR")

    def keyframe_before(pts: int) -> int:
        """Position in `keyframes` of the last keyframe at or before `pts` (0 if none)."""
        return max(bisect.bisect_right(keyframes, pts) - 1, 0)

    i, n = 0, len(wanted)
    position = None  # pts of the last decoded frame; None right after a (re)start
    started = False
    seek_slot = None  # keyframe slot sought last, to step back if the demuxer lands too late
    try:
        while i < n:
            target = int(wanted[i])
            slot = keyframe_before(target)
            if seek_slot is not None and slot >= seek_slot:
                slot = seek_slot - 1  # the last seek overshot: go one keyframe further back
            if started or slot > 0:
                if slot < 0:
                    raise ValueError(f"Video {name}: cannot seek to the frame at pts {target}.")
                container.seek(keyframes[slot], stream=stream, backward=True, any_frame=False)
                seek_slot = slot
            started, position = True, None
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if position is None and frame.pts > target and seek_slot:
                    break  # landed past the wanted frame: retry from an earlier keyframe
                if frame.pts < target:
                    position = frame.pts
                    continue  # frames of the GOP before the wanted one
                position = frame.pts
                seek_slot = None
                image = reformatter.reformat(frame, **convert).to_ndarray()
                while i < n and wanted[i] <= position:  # the frame on screen at each wanted instant
                    if out is not None:
                        out[i] = image
                    else:
                        kept.append(image)
                    i += 1
                if i == n:
                    break
                target = int(wanted[i])
                # Seek only if a keyframe lies between here and the next wanted frame: decoding from it is
                # then strictly less work than decoding through everything in between.
                if keyframes[keyframe_before(target)] > position:
                    break
            else:  # the decoder ran dry before reaching the wanted frame
                break
    except av.FFmpegError as err:
        raise ValueError(f"Video {name} is corrupted or truncated (decoding failed: {err}).") from err
    if i < n:
        raise ValueError(
            f"Video {name} is truncated or corrupted: its index lists {len(index.pts)} frames but decoding stopped "
            f"before the frame at {float((wanted[i] - index.pts[0]) * index.time_base):.3f} s "
            f"({i} of {n} wanted frames decoded)."
        )
    return out if out is not None else np.stack(kept)


# --------------------------------------------------------------------------------------------------------------
# In-memory frames
# --------------------------------------------------------------------------------------------------------------


def _read_array(frames: np.ndarray, name: str, num_frames, fps, size, input_fps) -> DecodedVideo:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"Video {name}: a frame array must have shape (T, H, W, 3), got {frames.shape}.")
    if frames.dtype != np.uint8:
        raise ValueError(f"Video {name}: a frame array must be uint8 RGB, got dtype {frames.dtype}.")
    if frames.shape[0] == 0:
        raise ValueError(f"Video {name} contains no frames.")
    times = np.arange(frames.shape[0]) / float(input_fps or DEFAULT_ARRAY_FPS)
    keep = select_frame_indices(times, num_frames, fps)
    return DecodedVideo(resize_frames(frames[keep], size), times[keep])


def _read_images(images, name: str, num_frames, fps, size, input_fps) -> DecodedVideo:
    if len(images) == 0:
        raise ValueError(f"Video {name} contains no frames.")
    if Image is None or not all(isinstance(image, Image.Image) for image in images):
        raise ValueError(f"Video {name}: a list video must hold PIL images only.")
    times = np.arange(len(images)) / float(input_fps or DEFAULT_ARRAY_FPS)
    keep = select_frame_indices(times, num_frames, fps)
    converted = []
    for k in keep:
        image = images[k].convert("RGB")
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), resample=Image.BILINEAR)
        converted.append(np.asarray(image, dtype=np.uint8))
    try:
        frames = np.stack(converted)
    except ValueError as err:
        raise ValueError(f"Video {name}: all images must have the same size when no `size` is given.") from err
    return DecodedVideo(frames, times[keep])


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None, chunk: int = 16) -> np.ndarray:
    """Bilinear, antialiased resize of uint8 frames (T, H, W, 3), in chunks to bound the float copy."""
    if size is None or tuple(frames.shape[1:3]) == tuple(size):
        return np.ascontiguousarray(frames)
    out = np.empty((frames.shape[0], size[0], size[1], 3), dtype=np.uint8)
    for start in range(0, frames.shape[0], chunk):
        block = torch.from_numpy(np.ascontiguousarray(frames[start : start + chunk])).permute(0, 3, 1, 2).float()
        block = torch.nn.functional.interpolate(block, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = block.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


__all__ = [
    "DEFAULT_ARRAY_FPS",
    "DecodedVideo",
    "describe_video",
    "read_video",
    "resize_frames",
    "select_frame_indices",
    "uniform_indices",
]
