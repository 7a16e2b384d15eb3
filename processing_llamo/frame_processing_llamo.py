"""Frame processor of LLaMo: sampled video frames -> normalised pixel tensors for the frozen vision tower (E1).

It subclasses `BaseImageProcessor` (not `BaseVideoProcessor`, which needs torchvision, see docs/STACK.md) so
that it serialises as the `image_processor` entry of the processor's `processor_config.json` and registers with
`AutoImageProcessor` (which accepts only `BaseImageProcessor` subclasses). It uses none of the base class's
image pipeline: frames are resized by the decoder and normalised here. Decoding and sampling live in
`video_io.py`; this class owns the settings (frame count or rate, size, statistics) and the batching (padding
to the longest clip, with a frame mask).

Resizing is a plain bilinear resize of the whole frame to `size` (no crop), as SigLIP's own image processor
does; for CLIP towers we keep the whole frame too rather than CLIP's centre crop, because the person whose
motion is asked about may well stand near the frame's edge.
"""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from .video_io import DecodedVideo, read_video

SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Pixel statistics each supported vision-tower family was trained with, keyed by a substring of `model_type`.
# Order matters: "siglip" must be tried before "clip" (it contains it).
VISION_TOWER_STATISTICS = (
    ("siglip", (SIGLIP_MEAN, SIGLIP_STD)),
    ("clip", (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)),
)


class LlamoFrameProcessorKwargs(TypedDict, total=False):
    """Settings `from_dict` / `from_pretrained` may override (read by `ImageProcessingMixin.from_dict`)."""

    size: dict
    image_mean: list
    image_std: list
    rescale_factor: float
    num_frames: int
    video_fps: float | None
    return_tensors: str | None


class LlamoFrameProcessor(BaseImageProcessor):
    r"""
    Samples, resizes and normalises video frames for LLaMo.

    Args:
        size (`dict[str, int]` or `int`, *optional*, defaults to `{"height": 224, "width": 224}`):
            Frame size the vision tower takes.
        image_mean (`list[float]`, *optional*, defaults to SigLIP's `[0.5, 0.5, 0.5]`):
            Per-channel mean subtracted after rescaling.
        image_std (`list[float]`, *optional*, defaults to SigLIP's `[0.5, 0.5, 0.5]`):
            Per-channel standard deviation divided by after subtracting the mean.
        rescale_factor (`float`, *optional*, defaults to `1 / 255`):
            Maps uint8 pixels to [0, 1] before normalising.
        num_frames (`int`, *optional*, defaults to 32):
            Frames kept per clip: uniformly spread when `video_fps` is None, else the cap on the rate-based sample.
        video_fps (`float`, *optional*):
            Sample frames at this rate (frames per second) instead of a fixed count.

    Call it on a clip or a list of clips (paths, bytes, uint8 arrays (T, H, W, 3), lists of PIL images). It returns
    a `BatchFeature` with
        - `pixel_values_videos` (N, T_max, 3, H, W) float32, zero where a clip has fewer than T_max frames;
        - `frame_mask` (N, T_max) int64, 1 on real frames (right padding);
        - `frame_timestamps` (N, T_max) float32, seconds from each clip's first frame, 0 on padding.
    """

    model_input_names = ["pixel_values_videos", "frame_mask", "frame_timestamps"]
    valid_kwargs = LlamoFrameProcessorKwargs

    def __init__(
        self,
        size: dict | int | None = None,
        image_mean: list | tuple | None = None,
        image_std: list | tuple | None = None,
        rescale_factor: float = 1 / 255,
        num_frames: int = 32,
        video_fps: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if size is None:
            size = {"height": 224, "width": 224}
        elif isinstance(size, int):
            size = {"height": size, "width": size}
        self.size = {"height": int(size["height"]), "width": int(size["width"])}
        self.image_mean = [float(v) for v in (image_mean if image_mean is not None else SIGLIP_MEAN)]
        self.image_std = [float(v) for v in (image_std if image_std is not None else SIGLIP_STD)]
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError("`image_mean` and `image_std` need 3 values each, and `image_std` must be positive.")
        self.rescale_factor = float(rescale_factor)
        self.num_frames = int(num_frames)
        if self.num_frames < 1:
            raise ValueError(f"`num_frames` must be >= 1, got {num_frames}.")
        if video_fps is not None and not (math.isfinite(video_fps) and video_fps > 0):
            raise ValueError(f"`video_fps` must be a finite number > 0 or None, got {video_fps!r}.")
        self.video_fps = None if video_fps is None else float(video_fps)

    @classmethod
    def from_vision_config(cls, vision_config, **kwargs) -> "LlamoFrameProcessor":
        """Frame processor matching a vision tower's config: its `image_size` and its family's pixel statistics.

        Accepts a config object or dict (e.g. `LlamoConfig.vision_config`). Only SigLIP and CLIP families are
        known; any other raises, because silently normalising with the wrong statistics degrades a frozen tower.
        """
        get = (
            vision_config.get
            if isinstance(vision_config, dict)
            else lambda key, default=None: getattr(vision_config, key, default)
        )
        model_type = get("model_type", "") or ""
        for family, (mean, std) in VISION_TOWER_STATISTICS:
            if family in model_type:
                break
        else:
            raise ValueError(
                f"Unknown vision tower family {model_type!r}: pass `image_mean`/`image_std` to LlamoFrameProcessor "
                f"yourself (known: {[family for family, _ in VISION_TOWER_STATISTICS]})."
            )
        kwargs.setdefault("size", int(get("image_size", 224)))
        kwargs.setdefault("image_mean", mean)
        kwargs.setdefault("image_std", std)
        return cls(**kwargs)

    def load_video(
        self, video, num_frames: int | None = None, video_fps: float | None = None, input_fps: float | None = None
    ) -> DecodedVideo:
        """Decode and sample one clip at this processor's size (uint8 frames and their timestamps)."""
        num_frames = self.num_frames if num_frames is None else num_frames
        video_fps = self.video_fps if video_fps is None else video_fps
        return read_video(
            video,
            num_frames=num_frames,
            fps=video_fps,
            size=(self.size["height"], self.size["width"]),
            input_fps=input_fps,
        )

    def normalize_frames(self, frames: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> float32 (T, 3, H, W): `(x * rescale_factor - mean) / std` as one multiply-add."""
        scale = torch.tensor([self.rescale_factor / s for s in self.image_std], dtype=torch.float32).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(self.image_mean, self.image_std)], dtype=torch.float32).view(
            1, 3, 1, 1
        )
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        if out is None:
            out = torch.empty(pixels.shape, dtype=torch.float32)
        torch.mul(pixels, scale, out=out)
        return out.add_(shift)

    def __call__(
        self,
        videos,
        num_frames: int | None = None,
        video_fps: float | None = None,
        input_fps: float | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Process one clip or a list of clips; see the class docstring for the outputs.

        `num_frames` / `video_fps` override the processor's settings for this call; `input_fps` is the frame rate
        of in-memory frames (arrays, PIL lists). `fps` is accepted as an alias of `video_fps` (the name
        `apply_chat_template` uses). Other keyword arguments are ignored.
        """
        if video_fps is None and kwargs.get("fps") is not None:
            video_fps = kwargs["fps"]
        clips = [self.load_video(video, num_frames, video_fps, input_fps) for video in make_list_of_videos(videos)]
        return self.collate(clips, return_tensors=return_tensors)

    def collate(
        self, clips: list[DecodedVideo], num_slots: int | None = None, return_tensors: str | None = "pt"
    ) -> BatchFeature:
        """Normalise decoded clips into one right-padded batch.

        `num_slots` pads the time axis to at least that many frames (the processor uses it to share one T across
        video and motion).
        """
        height, width = self.size["height"], self.size["width"]
        length = max([len(clip.frames) for clip in clips] + [num_slots or 0])
        pixel_values = torch.zeros(len(clips), length, 3, height, width, dtype=torch.float32)
        frame_mask = torch.zeros(len(clips), length, dtype=torch.int64)
        timestamps = torch.zeros(len(clips), length, dtype=torch.float32)
        for row, clip in enumerate(clips):
            count = len(clip.frames)
            self.normalize_frames(clip.frames, out=pixel_values[row, :count])
            frame_mask[row, :count] = 1
            timestamps[row, :count] = torch.from_numpy(np.asarray(clip.timestamps, dtype=np.float32))
        data = {"pixel_values_videos": pixel_values, "frame_mask": frame_mask, "frame_timestamps": timestamps}
        if return_tensors not in ("pt", None):
            data = {key: value.numpy() for key, value in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors if return_tensors != "pt" else None)


def is_single_video(video) -> bool:
    """Whether `video` is one clip (as opposed to a list of clips).

    A list is one clip when it holds PIL images (its frames); any other list is a list of clips.
    """
    if isinstance(video, (list, tuple)):
        return len(video) > 0 and all(_is_pil_image(item) for item in video)
    return video is not None


def make_list_of_videos(videos) -> list:
    """Wrap a single clip in a list; leave a list of clips as it is."""
    if is_single_video(videos):
        return [videos]
    if isinstance(videos, (list, tuple)):
        return list(videos)
    raise ValueError(f"Expected a video or a list of videos, got {type(videos).__name__}.")


def _is_pil_image(item) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(item, Image.Image)


__all__ = ["LlamoFrameProcessor", "is_single_video", "make_list_of_videos"]
