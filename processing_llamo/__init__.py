"""LLaMo processing: video decoding, frame processor, motion processor and `LlamoProcessor`.

Importing this package registers the processor classes with the Auto classes (keyed on `LlamoConfig`), so a
saved processor loads with `AutoProcessor.from_pretrained(folder)` without `trust_remote_code`, and marks them
for remote-code saving (`save_pretrained` copies the module files and writes `auto_map`), so the same folder also
loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoProcessor

from .frame_processing_llamo import LlamoFrameProcessor
from .motion_processing_llamo import LlamoMotionProcessor
from .processing_llamo import INSTRUCTION_END, INSTRUCTION_START, LLAMO_CHAT_TEMPLATE, MOTION_TOKEN, LlamoProcessor
from .video_io import DecodedVideo, read_video, select_frame_indices


def _register() -> None:
    # LlamoConfig is the natural key (AutoProcessor then also resolves a model folder through its config.json).
    # modeling_llamo imports this package at its end; by then `configuration_llamo` is loaded, so no cycle.
    from modeling_llamo.configuration_llamo import LlamoConfig

    # The frame processor is neither a torchvision nor a PIL image processor; register it under both backend
    # names so AutoImageProcessor finds it whichever backend it resolves to.
    AutoImageProcessor.register(
        LlamoConfig,
        image_processor_classes={"torchvision": LlamoFrameProcessor, "pil": LlamoFrameProcessor},
        exist_ok=True,
    )
    AutoFeatureExtractor.register(LlamoConfig, LlamoMotionProcessor, exist_ok=True)
    AutoProcessor.register(LlamoConfig, LlamoProcessor, exist_ok=True)
    LlamoProcessor.register_for_auto_class()  # also marks the two sub-processors


_register()

__all__ = [
    "DecodedVideo",
    "INSTRUCTION_END",
    "INSTRUCTION_START",
    "LLAMO_CHAT_TEMPLATE",
    "LlamoFrameProcessor",
    "LlamoMotionProcessor",
    "LlamoProcessor",
    "MOTION_TOKEN",
    "read_video",
    "select_frame_indices",
]
