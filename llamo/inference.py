"""One call from a conversation to an answer plus what the question selected (for the CLI, examples, notebooks)."""

import os
from dataclasses import dataclass, field

import torch

from llamo.paths import CACHE_ROOT

DEFAULT_UNTRAINED = os.path.join(CACHE_ROOT, "untrained-smollm2")


@dataclass
class Answer:
    """The generated text and, per clip, the key frames the Cross Talker chose (E6), which of them are the evenly
    spaced ones whatever the question (`num_coverage_frames`), and every frame's score; with the count head
    (`use_count_head`), its reading of the count per clip (the frames then leave out the last slot, which holds
    that reading instead of a frame)."""

    text: str
    key_frame_indices: list = field(default_factory=list)
    coverage_frame_indices: list = field(default_factory=list)  # per clip: those of the key frames evenly spaced
    frame_scores: list = field(default_factory=list)
    frame_timestamps: list = field(default_factory=list)
    repetition_counts: list = field(default_factory=list)


class KeyFrameRecorder:
    """Captures the Cross Talker's selection during `generate`'s prefill (no second forward pass)."""

    def __init__(self, model):
        self.indices = self.evenly_spaced = self.scores = self.counts = None
        self._handle = model.model.cross_talker.register_forward_hook(self._record)

    def _record(self, module, args, output):
        slots = slice(None)
        if output.repetition_counts is not None:  # the last slot carries the count head's reading, not its frame
            slots = slice(None, -1)
            self.counts = output.repetition_counts.detach().float().cpu()
        self.indices = output.key_frame_indices[:, slots].detach().cpu()
        self.evenly_spaced = output.evenly_spaced_key_frames[:, slots].detach().cpu()
        self.scores = output.frame_scores.detach().cpu()

    def close(self):
        self._handle.remove()


def ensure_untrained_default(path: str = DEFAULT_UNTRAINED):
    """Builds (once, then cached) an untrained LLaMo around SmolLM2-135M-Instruct with a small random vision
    tower: the fallback main model until a trained checkpoint is given. Joint-position motion features
    (`joints22`) so every motion format works."""
    if not os.path.exists(os.path.join(path, "config.json")):
        from conversion.build_from_parts import build_llamo_from_parts

        build_llamo_from_parts(
            language_model="smollm2", vision="siglip-tiny", output_dir=path, hidden_size=256, intermediate_size=512,
            processor_kwargs={"representation": "joints22", "num_frames": 16},
        )
    return path


def load(path: str, dtype=torch.float32, **config_overrides):
    """(model, processor) from a llamo checkpoint folder.

    `config_overrides` change `LlamoConfig` switches at load time (e.g. `frame_selection="uniform"`,
    `num_key_frames=8`, `use_enhancer=False`: the evaluation-time ablation); the processor's `num_key_frames`
    follows the model's, so each clip gets as many placeholders as the model selects key frames.
    """
    import modeling_llamo  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, **config_overrides).eval()
    processor = AutoProcessor.from_pretrained(path)
    processor.num_key_frames = model.config.num_key_frames
    return model, processor


def user_message(question: str, motion=None, video=None) -> dict:
    """A chat message with one clip (motion and/or video) followed by the question."""
    content = []
    if video is not None:
        content.append({"type": "video", "path": video} if isinstance(video, str) else {"type": "video", "video": video})
    if motion is not None:
        content.append({"type": "motion", "path": motion} if isinstance(motion, str) else {"type": "motion", "motion": motion})
    content.append({"type": "text", "text": question})
    return {"role": "user", "content": content}


def evenly_spaced_frames(key_frame_indices, evenly_spaced_key_frames) -> list:
    """One clip's key frames that were evenly spaced whatever the question (the model output's
    `evenly_spaced_key_frames` mask applied to its `key_frame_indices`), in time order without repeats."""
    return sorted({int(index) for index, even in zip(key_frame_indices.tolist(), evenly_spaced_key_frames.tolist()) if even})


def answer(model, processor, messages, streamer=None, max_new_tokens: int = 64, processor_kwargs=None, **generate_kwargs) -> Answer:
    """Generates the assistant's reply to `messages` (greedy unless told otherwise)."""
    inputs = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt",
        processor_kwargs=processor_kwargs or {},
    )
    recorder = KeyFrameRecorder(model)
    try:
        with torch.inference_mode():
            generate_kwargs.setdefault("do_sample", False)
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, streamer=streamer, **generate_kwargs)
    finally:
        recorder.close()
    text = processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    result = Answer(text=text)
    if recorder.indices is not None:
        mask = inputs.get("motion_mask", inputs.get("frame_mask"))
        times = inputs.get("frame_timestamps")
        for clip in range(recorder.indices.shape[0]):
            valid = int(mask[clip].sum()) if mask is not None else recorder.scores.shape[1]
            result.key_frame_indices.append(recorder.indices[clip].tolist())
            result.coverage_frame_indices.append(evenly_spaced_frames(recorder.indices[clip], recorder.evenly_spaced[clip]))
            result.frame_scores.append(recorder.scores[clip, :valid].tolist())
            if recorder.counts is not None:
                result.repetition_counts.append(float(recorder.counts[clip]))
            if times is not None:
                result.frame_timestamps.append(times[clip, :valid].tolist())
    return result
