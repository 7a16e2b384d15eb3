"""Shared fixtures: tiny random LLaMo configs (hidden 32, 2 layers), in the style of transformers' own tests."""

import importlib.util
import os
import sys
import tempfile

# Built checkpoints (SmolLM2 conversion, llamo-demo) go to a per-session cache unless the caller chose one; set
# before any llamo module reads it, removed when the session ends.
_SESSION_CACHE = None if "LLAMO_CACHE" in os.environ else tempfile.mkdtemp(prefix="llamo-test-cache-")
if _SESSION_CACHE:
    os.environ["LLAMO_CACHE"] = _SESSION_CACHE

import pytest  # noqa: E402
import torch  # noqa: E402

from modeling_llamo import LlamoConfig, LlamoForConditionalGeneration

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example(name):
    """`examples/<name>.py` as a module (examples are scripts, not a package); `examples/` is on the path while it
    executes, so an example importing another (ablate_demo -> train_demo) works."""
    spec = importlib.util.spec_from_file_location(f"llamo_example_{name}", os.path.join(REPO, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    sys.path.insert(0, os.path.join(REPO, "examples"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


VOCAB_SIZE = 99
MOTION_TOKEN_ID = VOCAB_SIZE - 1
MOTION_DIM = 12
NUM_KEY_FRAMES = 4
IMAGE_SIZE = 32


def tiny_config(**overrides) -> LlamoConfig:
    kwargs = dict(
        text_config={
            "model_type": "llama",
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 64,
            "vocab_size": VOCAB_SIZE,
            "max_position_embeddings": 256,
            "pad_token_id": 0,
            "eos_token_id": 2,
            "bos_token_id": 1,
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "intermediate_size": 64,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
        },
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        num_motion_encoder_layers=1,
        num_estimator_layers=1,
        num_key_frames=NUM_KEY_FRAMES,
        num_segments=2,
        motion_feature_dim=MOTION_DIM,
        motion_token_id=MOTION_TOKEN_ID,
    )
    kwargs.update(overrides)
    return LlamoConfig(**kwargs)


def make_prompt(prefix=(5, 6, 7), suffix=(8, 9, 10, 11), clips=1):
    """Token ids with `clips` blocks of K placeholders between a prefix and a suffix."""
    ids = list(prefix)
    for _ in range(clips):
        ids += [MOTION_TOKEN_ID] * NUM_KEY_FRAMES + [12]
    return ids + list(suffix)


def clip_inputs(num_clips=1, frames=10, video=False, motion=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = {}
    if motion:
        inputs["motion_values"] = torch.randn(num_clips, frames, MOTION_DIM, generator=gen)
        inputs["motion_mask"] = torch.ones(num_clips, frames, dtype=torch.long)
    if video:
        inputs["pixel_values_videos"] = torch.randn(num_clips, frames, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
        inputs["frame_mask"] = torch.ones(num_clips, frames, dtype=torch.long)
    return inputs


@pytest.fixture(scope="session", autouse=True)
def _remove_session_cache():
    yield
    if _SESSION_CACHE:
        import shutil

        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture
def model(config):
    torch.manual_seed(0)
    return LlamoForConditionalGeneration(config).eval()
