"""A tiny, offline LLaMo (model + tokenizer + processor) for tests, smoke runs and benchmarks of the training path.

Nothing is downloaded: the tokenizer is a word-level `tokenizers` model wrapped in `PreTrainedTokenizerFast`
with the ChatML markers and `<motion>` as special tokens; the model is a random `LlamoConfig` of hidden size 32.
"""

from __future__ import annotations

TINY_WORDS = (
    "the a an person man woman walks walk walking runs run jumps jump turns turn left right forward backward "
    "backwards what does do is which direction how many times and then after before while with hand arm leg foot "
    "body part action someone stands sits waves kicks throws picks up down in between first last motion video "
    "describe you are helpful assistant user system question answer yes no one two three four five ?  . , : ' !"
).split()
SPECIAL_TOKENS = ("<pad>", "<s>", "<unk>", "<|im_start|>", "<|im_end|>", "<motion>")


def tiny_tokenizer(extra_words=()):
    """Word-level fast tokenizer: lower-cased words and punctuation, newlines kept as a token."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys(list(TINY_WORDS) + list(extra_words)))
    vocab = {token: index for index, token in enumerate(list(SPECIAL_TOKENS) + ["\n"] + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[ \t]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"\n|\w+|[^\w\s]"), behavior="isolated"),
    ])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        extra_special_tokens={"im_start": "<|im_start|>", "motion_token": "<motion>"},
    )


def tiny_processor(num_key_frames: int = 4, num_frames: int = 8, image_size: int = 32, representation: str = "joints22",
                   max_motion_frames: int = 64):
    from processing_llamo import LlamoFrameProcessor, LlamoMotionProcessor, LlamoProcessor

    return LlamoProcessor(
        image_processor=LlamoFrameProcessor(size=image_size, num_frames=num_frames),
        feature_extractor=LlamoMotionProcessor(representation=representation, max_motion_frames=max_motion_frames),
        tokenizer=tiny_tokenizer(),
        num_key_frames=num_key_frames,
    )


def tiny_model(processor, seed: int = 0, hidden_size: int = 32, num_layers: int = 2, **overrides):
    """A random LLaMo sized for tests, matching `processor` (vocabulary, K, motion feature width)."""
    import torch

    from modeling_llamo import LlamoConfig, LlamoForConditionalGeneration

    tokenizer = processor.tokenizer
    kwargs = dict(
        text_config={
            "model_type": "llama", "hidden_size": hidden_size, "num_hidden_layers": num_layers, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 2 * hidden_size, "vocab_size": len(tokenizer),
            "max_position_embeddings": 512, "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id,
        },
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4,
            "intermediate_size": 64, "image_size": processor.image_processor.size["height"], "patch_size": 8,
        },
        hidden_size=hidden_size, num_attention_heads=4, intermediate_size=2 * hidden_size,
        num_motion_encoder_layers=1, num_estimator_layers=1, num_key_frames=processor.num_key_frames, num_segments=2,
        motion_feature_dim=processor.feature_extractor.feature_dim,
        motion_representation=processor.feature_extractor.representation,
        motion_token_id=processor.motion_token_id,
    )
    kwargs.update(overrides)
    torch.manual_seed(seed)
    model = LlamoForConditionalGeneration(LlamoConfig(**kwargs))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
