"""`LlamoProcessor`: text + video + motion -> the inputs of `LlamoForConditionalGeneration`.

Contract with the model (docs/SPEC.md sections 2-3):

* **One marker per clip.** The user writes one `<motion>` (`motion_token`) per clip; the processor expands it
  into `num_key_frames` (K) copies, the positions the model's Cross Talker writes its K fused key-frame
  features into (E11). The video and the motion of one clip share that one marker (video reaches the language
  model only through the motion stream, E4). The token is added to the tokenizer as a special token when
  missing; `processor.motion_token_id` is the model config's `motion_token_id`.
* **Media lists.** `videos` and `motions` are flat lists in marker order across the whole batch, `None` for a
  clip that lacks that modality; a single clip may be passed bare. Per-sample nested lists (what
  `apply_chat_template` produces) are flattened.
* **Shared timeline.** Each clip gets one timeline, `frame_timestamps` (N, T): the sampled video frames' times
  when the clip has video, otherwise the motion processor's timeline. When a clip has both, the motion is
  resampled at the video frames' times, so `motion_values` and `pixel_values_videos` have the same T and mask.
  All clips are right-padded to one T; a clip without video gets zero pixels and an all-zero `frame_mask`
  (and likewise for motion), and the keys of a modality no clip has are omitted.
* **Guidance (instruction) tokens.** The Cross Talker attends from the *instruction* tokens (E5). The chat
  template wraps the user's words in `<|instruction|>`..`<|/instruction|>`; `__call__` strips these markers
  before tokenising, remembers the character spans between them, and sets `guidance_mask` = 1 on tokens that
  overlap a span (via the tokenizer's offset mapping). The markers never reach the language model. Text
  without markers (a hand-written prompt) counts entirely as instruction. Placeholders, special tokens and
  padding are never guidance.

This file is copied flat, with the files it imports, by `save_pretrained` for `trust_remote_code` loading:
imports stay relative, optional dependencies guarded.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .frame_processing_llamo import LlamoFrameProcessor, is_single_video
from .motion_formats import load_motion
from .motion_processing_llamo import LlamoMotionProcessor

MOTION_TOKEN = "<motion>"
INSTRUCTION_START = "<|instruction|>"
INSTRUCTION_END = "<|/instruction|>"

# ChatML as SmolLM2 writes it. Clip rule, implemented identically in `_clips_in_content` below: a video block and
# a motion block that follow each other directly in one message are one clip (one marker); a block with both
# `video` and `motion` keys is one clip; anything else (e.g. text in between) starts a new clip. User text is
# wrapped in instruction markers; the assistant's turn is a `{% generation %}` block so that
# `return_assistant_tokens_mask=True` yields the answer tokens for the loss (E13).
LLAMO_CHAT_TEMPLATE = (
    "{#- LLaMo chat template (ChatML). One <motion> marker per clip: a video block directly followed by a motion"
    " block (or the reverse) in one message is one clip, as is one block with both 'video' and 'motion' keys."
    " User text is wrapped in <|instruction|>..<|/instruction|>, which the processor strips and marks as"
    " guidance tokens. -#}\n"
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
    "{%- if message['content'] is string -%}{%- set blocks = [{'type': 'text', 'text': message['content']}] -%}\n"
    "{%- else -%}{%- set blocks = message['content'] -%}{%- endif -%}\n"
    "{%- if message['role'] == 'assistant' -%}\n"
    "{%- generation -%}\n"
    "{%- for block in blocks if block['type'] == 'text' -%}{{- block['text'] -}}{%- endfor -%}\n"
    "{{- '<|im_end|>' -}}\n"
    "{%- endgeneration -%}\n"
    "{{- '\\n' -}}\n"
    "{%- else -%}\n"
    "{%- set ns = namespace(open=none) -%}\n"
    "{%- for block in blocks -%}\n"
    "{%- if block['type'] in ['video', 'motion'] -%}\n"
    "{%- set both = 'video' in block and 'motion' in block -%}\n"
    "{%- if ns.open is not none and ns.open != block['type'] and not both -%}{%- set ns.open = none -%}\n"
    "{%- else -%}{{- '" + MOTION_TOKEN + "\\n' -}}{%- set ns.open = none if both else block['type'] -%}{%- endif -%}\n"
    "{%- elif block['type'] == 'text' -%}\n"
    "{%- set ns.open = none -%}\n"
    "{%- if message['role'] == 'user' -%}"
    "{{- '" + INSTRUCTION_START + "' + block['text'] + '" + INSTRUCTION_END + "' -}}"
    "{%- else -%}{{- block['text'] -}}{%- endif -%}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{{- '<|im_end|>\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n"
)

_VIDEO_KEYS = ("video", "url", "path")
_MOTION_KEYS = ("motion", "path")


class LlamoProcessor(ProcessorMixin):
    r"""
    Processor of LLaMo: a tokenizer, a frame processor (video) and a motion processor.

    Args:
        image_processor ([`LlamoFrameProcessor`], *optional*):
            Samples and normalises video frames. (Named `image_processor` because `ProcessorMixin` discovers
            sub-processors by argument name and `video_processor` would require torchvision's
            `BaseVideoProcessor`.) Defaults to a SigLIP-224, 32-frame processor.
        feature_extractor ([`LlamoMotionProcessor`], *optional*):
            Converts motion to canonical per-frame features. Defaults to its default representation.
        tokenizer ([`PreTrainedTokenizerBase`]):
            A fast tokenizer (the offset mapping is needed for `guidance_mask`). `motion_token` is added as a
            special token if missing, a missing pad token falls back to the EOS token, and the padding side is
            set to left, which batched generation needs (pass `padding_side="right"` to a call to override).
        chat_template (`str`, *optional*):
            Defaults to `LLAMO_CHAT_TEMPLATE` (ChatML).
        num_key_frames (`int`, *optional*, defaults to 16):
            K, placeholder tokens per clip; must equal the model config's `num_key_frames`.
        motion_token (`str`, *optional*, defaults to `"<motion>"`):
            The per-clip marker and placeholder token.
    """

    def __init__(
        self,
        image_processor=None,
        feature_extractor=None,
        tokenizer=None,
        chat_template=None,
        num_key_frames: int = 16,
        motion_token: str = MOTION_TOKEN,
        **kwargs,
    ):
        if tokenizer is None:
            raise ValueError("LlamoProcessor needs a tokenizer.")
        if int(num_key_frames) < 1:
            raise ValueError(f"`num_key_frames` must be >= 1, got {num_key_frames}.")
        image_processor = image_processor if image_processor is not None else LlamoFrameProcessor()
        feature_extractor = feature_extractor if feature_extractor is not None else LlamoMotionProcessor()
        self.num_key_frames = int(num_key_frames)
        self.motion_token = motion_token
        if motion_token not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"extra_special_tokens": [motion_token]}, replace_extra_special_tokens=False)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        super().__init__(
            image_processor,
            feature_extractor,
            tokenizer,
            chat_template=chat_template if chat_template is not None else LLAMO_CHAT_TEMPLATE,
            **kwargs,
        )
        self.motion_token_id = tokenizer.convert_tokens_to_ids(motion_token)
        self._markers = re.compile(
            "|".join(re.escape(marker) for marker in (INSTRUCTION_START, INSTRUCTION_END, motion_token))
        )

    # ----------------------------------------------------------------------------------------------------------
    # Loading
    # ----------------------------------------------------------------------------------------------------------

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        """Build the sub-processors from `processor_config.json` with our own classes.

        The stock path resolves `image_processor`/`feature_extractor` through `AutoImageProcessor`/
        `AutoFeatureExtractor`, which needs the classes registered in the Auto mappings. That holds when the
        `processing_llamo` package is installed, but not after `trust_remote_code` loading, where the classes
        come from the dynamically imported copy of this module. Building them here works in both cases.
        """
        processor_dict = processor_dict or {}
        subfolder = kwargs.pop("subfolder", "")
        tokenizer = cls._load_tokenizer_from_pretrained(
            "tokenizer", pretrained_model_name_or_path, subfolder=subfolder, **kwargs
        )
        image_processor = LlamoFrameProcessor.from_dict(_sub_config(processor_dict, "image_processor"))
        feature_extractor = LlamoMotionProcessor.from_dict(_sub_config(processor_dict, "feature_extractor"))
        return [image_processor, feature_extractor, tokenizer]

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoProcessor"):
        """Register for `trust_remote_code` saving, with the sub-processors (their configs then carry `auto_map`)."""
        super().register_for_auto_class(auto_class)
        LlamoFrameProcessor.register_for_auto_class("AutoImageProcessor")
        LlamoMotionProcessor.register_for_auto_class("AutoFeatureExtractor")

    @property
    def frame_processor(self) -> LlamoFrameProcessor:
        return self.image_processor

    @property
    def motion_processor(self) -> LlamoMotionProcessor:
        return self.feature_extractor

    @property
    def model_input_names(self) -> list[str]:
        return [
            "input_ids",
            "attention_mask",
            "guidance_mask",
            "pixel_values_videos",
            "frame_mask",
            "frame_timestamps",
            "motion_values",
            "motion_mask",
        ]

    # ----------------------------------------------------------------------------------------------------------
    # Call
    # ----------------------------------------------------------------------------------------------------------

    def __call__(
        self,
        text=None,
        videos=None,
        motions=None,
        images=None,
        audio=None,
        *,
        num_frames: int | None = None,
        video_fps: float | None = None,
        input_fps: float | None = None,
        motion_fps=None,
        motion_format: str | None = None,
        body_model=None,
        up_axis: str | None = None,
        padding=True,
        padding_side: str | None = None,
        truncation=None,
        max_length: int | None = None,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        r"""
        Tokenise prompts with one `<motion>` marker per clip and process the clips' video and motion.

        Args:
            text (`str` or `list[str]`): one prompt per batch row.
            videos: clips' videos in marker order across the batch (path, bytes, uint8 array (T, H, W, 3),
                list of PIL images, or `None` for a clip without video). A single clip may be passed bare.
            motions: clips' motions in marker order (anything `LlamoMotionProcessor` reads, or `None`).
            num_frames, video_fps: frame sampling for this call (defaults: the frame processor's).
                `fps` is accepted as an alias of `video_fps`.
            input_fps: frame rate of in-memory video frames (arrays, PIL lists).
            motion_fps: native rate of in-memory motions (one number or one per motion clip).
            motion_format, body_model, up_axis: passed to the motion processor (`format=`, ...).
            padding, padding_side, truncation, max_length, add_special_tokens: tokenizer options. Padding
                defaults to True (longest) on the tokenizer's side (left, see the class docstring).
            return_offsets_mapping: also return `offset_mapping` in the coordinates of the *given* text (the
                markers' own characters included), as `apply_chat_template(return_assistant_tokens_mask=True)`
                needs.
            return_tensors: `"pt"` (default), `"np"` or `None`.

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask`, `guidance_mask` (B, L) and, per clip (N clips),
            `frame_timestamps` (N, T) float32; `pixel_values_videos` (N, T, 3, H, W) float32 and `frame_mask`
            (N, T) int64 if any clip has video; `motion_values` (N, T, D) float32 and `motion_mask` (N, T) int64
            if any clip has motion.

        Raises:
            ValueError: when the number of markers and of media entries differ, media come without any marker,
                a clip has neither video nor motion, or truncation cut into placeholders.
        """
        # Nested `*_kwargs` dicts are the generic processor convention (e.g. `videos_kwargs={"fps": 2}`).
        for group in ("text_kwargs", "videos_kwargs", "motion_kwargs", "common_kwargs"):
            kwargs.update(kwargs.pop(group, None) or {})
        if video_fps is None:
            video_fps = kwargs.pop("fps", None)
        num_frames = kwargs.pop("num_frames", num_frames)
        for ignored in ("do_sample_frames", "return_text_replacement_offsets", "return_mm_token_type_ids"):
            kwargs.pop(ignored, None)  # set by `ProcessorMixin.apply_chat_template`; nothing to do here
        if images is not None or audio is not None:
            raise ValueError("LlamoProcessor takes `videos` and `motions`; `images` and `audio` are not supported.")
        if text is None:
            raise ValueError("LlamoProcessor needs `text` (with one `<motion>` marker per clip).")
        texts = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(sample, str) for sample in texts):
            raise ValueError("`text` must be a string or a list of strings.")

        prompts = [self._expand_prompt(sample) for sample in texts]
        num_clips = sum(prompt.num_clips for prompt in prompts)
        video_list = self._clip_list(videos, num_clips, "videos", is_single_video)
        motion_list = self._clip_list(motions, num_clips, "motions", lambda item: not isinstance(item, (list, tuple)))
        for index in range(num_clips):
            if (video_list is None or video_list[index] is None) and (
                motion_list is None or motion_list[index] is None
            ):
                raise ValueError(f"Clip {index} (marker {index} in batch order) has neither a video nor a motion.")

        encoding = self.tokenizer(
            [prompt.text for prompt in prompts],
            padding=padding,
            padding_side=padding_side or self.tokenizer.padding_side,
            truncation=truncation,
            max_length=max_length,
            add_special_tokens=add_special_tokens,
            return_offsets_mapping=True,
            **kwargs,
        )
        offsets = encoding.pop("offset_mapping")
        self._check_placeholders(encoding["input_ids"], prompts)
        data = dict(encoding)
        data["guidance_mask"] = [
            self._guidance_row(ids, mask, row_offsets, prompt.instruction_spans)
            for ids, mask, row_offsets, prompt in zip(
                encoding["input_ids"], encoding["attention_mask"], offsets, prompts
            )
        ]
        if return_offsets_mapping:
            data["offset_mapping"] = [prompt.to_source_offsets(row) for prompt, row in zip(prompts, offsets)]
        if num_clips:
            data.update(
                self._process_clips(
                    video_list,
                    motion_list,
                    dict(num_frames=num_frames, video_fps=video_fps, input_fps=input_fps),
                    dict(fps=motion_fps, format=motion_format, body_model=body_model, up_axis=up_axis),
                )
            )
            if return_tensors != "pt":
                data.update({key: value.numpy() for key, value in data.items() if isinstance(value, torch.Tensor)})
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _clip_list(self, media, num_clips: int, name: str, is_clip) -> list | None:
        """Flatten `media` to one entry per marker (batch order) and check the count against the markers."""
        if media is None:
            return None
        if is_clip(media):
            flat = [media]
        elif isinstance(media, (list, tuple)):
            flat = []
            for item in media:  # one level of per-sample nesting, as `apply_chat_template` produces
                if item is None or is_clip(item):
                    flat.append(item)
                elif isinstance(item, (list, tuple)):
                    flat.extend(item)
                else:
                    raise ValueError(f"Unsupported entry of type {type(item).__name__} in `{name}`.")
        else:
            raise ValueError(f"Unsupported `{name}` of type {type(media).__name__}.")
        if all(item is None for item in flat) and num_clips == 0:
            return None
        if len(flat) != num_clips:
            raise ValueError(
                f"The text has {num_clips} `{self.motion_token}` marker(s) (one per clip) but {len(flat)} {name} "
                f"were given: expected {num_clips}, got {len(flat)}. Pass one entry per marker, in order, with None "
                "for a clip that lacks this modality."
            )
        return flat

    def _process_clips(self, video_list, motion_list, video_kwargs: dict, motion_kwargs: dict) -> dict:
        """Video and motion of every clip on one padded timeline (see the module docstring)."""
        num_clips = len(video_list if video_list is not None else motion_list)
        decoded = {}
        if video_list is not None:
            for index, video in enumerate(video_list):
                if video is not None:
                    decoded[index] = self.image_processor.load_video(video, **video_kwargs)

        motion_rows, motion_batch = [], None
        if motion_list is not None:
            motion_rows = [index for index, motion in enumerate(motion_list) if motion is not None]
        if motion_rows:
            fps = motion_kwargs.pop("fps")
            if isinstance(fps, (list, tuple)) and len(fps) == num_clips:
                fps = [fps[index] for index in motion_rows]  # given per clip rather than per motion
            motion_batch = self.feature_extractor(
                [motion_list[index] for index in motion_rows],
                timestamps=[decoded[index].timestamps if index in decoded else None for index in motion_rows],
                fps=fps,
                return_tensors="pt",
                **{key: value for key, value in motion_kwargs.items() if value is not None},
            )

        lengths = [0] * num_clips
        for index, clip in decoded.items():
            lengths[index] = len(clip.frames)
        for row, index in enumerate(motion_rows):
            count = int(motion_batch["motion_mask"][row].sum())
            if index in decoded and count != lengths[index]:  # the motion processor samples exactly at the frames
                raise RuntimeError(f"Clip {index}: motion has {count} frames on a video timeline of {lengths[index]}.")
            lengths[index] = max(lengths[index], count)
        length = max(lengths)

        out = {"frame_timestamps": torch.zeros(num_clips, length, dtype=torch.float32)}
        if decoded:
            rows = sorted(decoded)
            video_batch = self.image_processor.collate([decoded[index] for index in rows], num_slots=length)
            out["pixel_values_videos"] = _scatter_rows(video_batch["pixel_values_videos"], rows, num_clips)
            out["frame_mask"] = _scatter_rows(video_batch["frame_mask"], rows, num_clips)
            out["frame_timestamps"][rows] = video_batch["frame_timestamps"]
        if motion_rows:
            width = motion_batch["motion_values"].shape[1]
            values = torch.zeros(num_clips, length, motion_batch["motion_values"].shape[-1], dtype=torch.float32)
            mask = torch.zeros(num_clips, length, dtype=torch.int64)
            values[motion_rows, :width] = motion_batch["motion_values"].float()
            mask[motion_rows, :width] = motion_batch["motion_mask"].long()
            out["motion_values"], out["motion_mask"] = values, mask
            motion_only = [row for row, index in enumerate(motion_rows) if index not in decoded]
            if motion_only:
                out["frame_timestamps"][[motion_rows[row] for row in motion_only], :width] = motion_batch[
                    "motion_timestamps"
                ][motion_only].float()
        return out

    # ----------------------------------------------------------------------------------------------------------
    # Text
    # ----------------------------------------------------------------------------------------------------------

    def _expand_prompt(self, text: str) -> "_Prompt":
        """Strip instruction markers and expand each motion marker into K placeholders, in one pass."""
        pieces, sources, spans = [], [], []
        position, inside, seen_instruction, num_clips, last = 0, False, False, 0, 0

        def emit(piece: str, source_start: int, source_end: int, expanded: bool, instruction: bool):
            nonlocal position
            if not piece:
                return
            pieces.append(piece)
            sources.append((position, source_start, source_end, expanded))
            if instruction:
                spans.append((position, position + len(piece)))
            position += len(piece)

        for match in self._markers.finditer(text):
            emit(text[last : match.start()], last, match.start(), False, inside)
            marker = match.group()
            if marker == self.motion_token:
                emit(self.motion_token * self.num_key_frames, match.start(), match.end(), True, False)
                num_clips += 1
            elif marker == INSTRUCTION_START:
                if inside:
                    raise ValueError(f"Nested `{INSTRUCTION_START}` at character {match.start()} of: {text!r}")
                inside = seen_instruction = True
            else:
                if not inside:
                    raise ValueError(
                        f"`{INSTRUCTION_END}` without an opening marker at character {match.start()} of: {text!r}"
                    )
                inside = False
            last = match.end()
        if inside:
            raise ValueError(f"Unclosed `{INSTRUCTION_START}` in: {text!r}")
        emit(text[last:], last, len(text), False, False)
        return _Prompt("".join(pieces), num_clips, spans if seen_instruction else None, sources)

    def _guidance_row(self, ids, attention, offsets, spans) -> list[int]:
        """1 on tokens overlapping an instruction span (all text when `spans` is None), 0 elsewhere."""
        excluded = set(self.tokenizer.all_special_ids) | {self.motion_token_id}
        row = []
        for token, attended, (start, end) in zip(ids, attention, offsets):
            keep = attended and token not in excluded and end > start
            if keep and spans is not None:
                keep = any(start < span_end and end > span_start for span_start, span_end in spans)
            row.append(int(keep))
        return row

    def _check_placeholders(self, input_ids, prompts) -> None:
        for row, (ids, prompt) in enumerate(zip(input_ids, prompts)):
            found = sum(1 for token in ids if token == self.motion_token_id)
            expected = prompt.num_clips * self.num_key_frames
            if found != expected:
                raise ValueError(
                    f"Row {row}: expected {expected} `{self.motion_token}` placeholder tokens "
                    f"({prompt.num_clips} clip(s) x {self.num_key_frames}), got {found}. "
                    "Truncation must not cut into the media placeholders."
                )

    # ----------------------------------------------------------------------------------------------------------
    # Chat template
    # ----------------------------------------------------------------------------------------------------------

    def _multimodal_inputs_from_conversations(
        self, conversations, audio_loading_params=None, load_audio_from_video=False
    ):
        """Collect each conversation's clips (video, motion) in marker order, pairing blocks as the template does.

        Returns videos per conversation (None for motion-only clips) and the motions as an extra input, which
        `ProcessorMixin.apply_chat_template` forwards to `__call__` as `motions=`. Media stay as given (paths,
        arrays...): `__call__` loads them.
        """
        batch_videos, batch_motions = [], []
        for conversation in conversations:
            clips = []
            for message in conversation:
                content = message.get("content")
                if isinstance(content, list):
                    clips.extend(_clips_in_content(content))
            batch_videos.append([video for video, _ in clips])
            batch_motions.append([motion for _, motion in clips])
        has_motion = any(motion is not None for motions in batch_motions for motion in motions)
        return [[] for _ in conversations], batch_videos, [], {"motions": batch_motions} if has_motion else {}


class _Prompt:
    """One prompt after marker handling: the text to tokenise and how it maps back to the given text."""

    def __init__(self, text: str, num_clips: int, instruction_spans, sources):
        self.text = text
        self.num_clips = num_clips
        self.instruction_spans = instruction_spans  # None: no markers, the whole text is instruction
        self._sources = sources  # (start in text, start in source, end in source, is a placeholder expansion)
        self._starts = [start for start, *_ in sources]

    def _to_source(self, char: int, end: bool) -> int:
        piece = max(int(np.searchsorted(self._starts, char, side="right")) - 1, 0)
        start, source_start, source_end, expanded = self._sources[piece]
        if expanded:  # every placeholder maps onto its whole marker
            return source_end if end else source_start
        return source_start + (char - start) + (1 if end else 0)

    def to_source_offsets(self, offsets) -> list[tuple[int, int]]:
        """Token character offsets in the tokenised text -> offsets in the text given to `__call__`."""
        return [
            (self._to_source(start, False), self._to_source(end - 1, True)) if end > start else (0, 0)
            for start, end in offsets
        ]


def _clips_in_content(content: list) -> list[tuple]:
    """(video, motion) per clip of one message's content list; mirrors `LLAMO_CHAT_TEMPLATE`'s pairing rule."""
    clips, open_type = [], None
    for block in content:
        block_type = block.get("type") if isinstance(block, dict) else None
        if block_type not in ("video", "motion"):
            open_type = None
            continue
        both = "video" in block and "motion" in block
        if both:
            video, motion = block["video"], block["motion"]
        elif block_type == "video":
            video, motion = next((block[key] for key in _VIDEO_KEYS if key in block), None), None
        else:
            video, motion = None, next((block[key] for key in _MOTION_KEYS if key in block), None)
        motion = _with_block_settings(motion, block)
        if open_type is not None and open_type != block_type and not both:
            previous_video, previous_motion = clips[-1]
            clips[-1] = (previous_video if video is None else video, previous_motion if motion is None else motion)
            open_type = None
        else:
            clips.append((video, motion))
            open_type = None if both else block_type
    return clips


_MOTION_BLOCK_SETTINGS = ("fps", "up_axis", "format")


def _with_block_settings(motion, block: dict):
    """A motion block's own `fps` / `up_axis` / `format` (e.g. `{"type": "motion", "path": "joints.npy", "fps": 30,
    "up_axis": "z"}`) apply to that clip alone: the clip is read here with them, as a `MotionSequence`."""
    settings = {key: block[key] for key in _MOTION_BLOCK_SETTINGS if block.get(key) is not None}
    if motion is None or not settings:
        return motion
    return load_motion(motion, **settings)


def _scatter_rows(values: torch.Tensor, rows: list[int], num_rows: int) -> torch.Tensor:
    """Place `values` (len(rows), ...) at `rows` of a zero tensor with `num_rows` rows (no copy if all rows)."""
    if rows == list(range(num_rows)):
        return values
    out = torch.zeros((num_rows,) + tuple(values.shape[1:]), dtype=values.dtype)
    out[rows] = values
    return out


def _sub_config(processor_dict: dict, name: str) -> dict:
    config = dict(processor_dict.get(name) or {})
    for key in ("auto_map", "processor_class", f"{name}_type"):
        config.pop(key, None)
    return config


__all__ = ["INSTRUCTION_END", "INSTRUCTION_START", "LLAMO_CHAT_TEMPLATE", "LlamoProcessor", "MOTION_TOKEN"]
