"""The fine-tuning path: data format and collator (E13 label masking), adapters, media errors, Trainer steps, LoRA
save/load, resume equivalence, a two-process accelerate run, and the push_to_hub-ready folder + model card.

Everything runs offline on a tiny random LLaMo (hidden 32, 2 layers) with a word-level tokenizer
(`llamo.training.tiny`); a few optimizer steps per run.
"""

import json
import logging
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from llamo.data.adapters import babel_qa_conversations, humanml3d_conversations, kitml_conversations
from llamo.data.augment import MirrorMotion
from llamo.data.conversations import (
    LlamoDataCollator,
    LlamoGenerationCollator,
    MediaError,
    check_media,
    load_conversations,
    write_jsonl,
)
from llamo.hub import check_hub_folder, render_model_card
from llamo.training.tiny import tiny_model, tiny_processor
from llamo.training.trainer import LlamoTrainer, new_module_names, prepare_model_for_stage, score_answer

from .conftest import load_example

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
JOINTS = np.load(os.path.join(FIXTURES, "humanml3d", "012314_joints22.npy"))  # (170, 22, 3), 20 fps, Y-up
VIDEO = os.path.join(FIXTURES, "videos", "part_0.mp4")
ANSWERS = ["walk forward", "turn left", "jump", "run"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"  # see `one_thread`
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread. Several threads cost far more than they bring at hidden size 32, and on a
    loaded machine their barriers make each step ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, processor):
    """A tiny model folder and a JSONL dataset of 12 training + 4 evaluation conversations."""
    root = tmp_path_factory.mktemp("finetune")
    model = tiny_model(processor)
    model.save_pretrained(root / "tiny")
    processor.save_pretrained(root / "tiny")
    data = root / "data"
    data.mkdir()
    rows = []
    for i in range(16):
        np.save(data / f"m{i}.npy", JOINTS[i * 5 : i * 5 + 30])
        rows.append({
            "id": f"s{i}",
            "messages": [
                {"role": "user", "content": [{"type": "motion", "path": f"m{i}.npy", "fps": 20},
                                             {"type": "text", "text": "what does the person do?"}]},
                {"role": "assistant", "content": ANSWERS[i % 4]},
            ],
        })
    write_jsonl(rows[:12], data / "train.jsonl")
    write_jsonl(rows[12:], data / "val.jsonl")
    return root


# ----------------------------------------------------------------------------------------------------------------
# Data format and collator
# ----------------------------------------------------------------------------------------------------------------


def _answer_positions(tokens):
    """Independent reference for E13: tokens after `<|im_start|> assistant \\n` up to and including `<|im_end|>`."""
    keep, inside = [], False
    for i, token in enumerate(tokens):
        keep.append(inside)
        if inside and token == "<|im_end|>":
            inside = False
        if not inside and i >= 2 and tokens[i - 2 : i + 1] == ["<|im_start|>", "assistant", "\n"]:
            inside = True
    return keep


def test_collator_masks_everything_but_answers(tmp_path, processor):
    np.save(tmp_path / "a.npy", JOINTS[:40])
    np.save(tmp_path / "b.npy", JOINTS[40:70])
    rows = [
        {"id": "multi-turn", "messages": [
            {"role": "user", "content": [{"type": "motion", "path": "a.npy", "fps": 20},
                                         {"type": "text", "text": "what does the person do?"}]},
            {"role": "assistant", "content": "the person walks left."},
            {"role": "user", "content": "and then?"},
            {"role": "assistant", "content": [{"type": "text", "text": "turn right"}]},
        ]},
        {"id": "video+motion", "messages": [
            {"role": "system", "content": "you are a helpful assistant."},
            {"role": "user", "content": [{"type": "video", "path": VIDEO}, {"type": "motion", "path": "b.npy", "fps": 20},
                                         {"type": "text", "text": "which direction?"}]},
            {"role": "assistant", "content": "left"},
        ]},
    ]
    write_jsonl(rows, tmp_path / "d.jsonl")
    dataset = load_conversations(str(tmp_path / "d.jsonl"))
    batch = LlamoDataCollator(processor)([dataset[0], dataset[1]])
    tokenizer = processor.tokenizer
    assert batch["motion_values"].shape[0] == 2 and batch["pixel_values_videos"].shape[0] == 2
    assert batch["frame_mask"][0].sum() == 0 and batch["frame_mask"][1].sum() > 0  # clip 0 has no video
    for row in range(2):
        ids, labels, attention = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        tokens = tokenizer.convert_ids_to_tokens(ids.tolist())
        expected = torch.where(torch.tensor(_answer_positions(tokens)) & attention.bool(), ids, torch.full_like(ids, -100))
        assert torch.equal(labels, expected)
        assert (labels[ids == processor.motion_token_id] == -100).all()
        assert (labels[attention == 0] == -100).all()
        assert attention[0] == 1  # right padding for training
    learned = [tokenizer.convert_ids_to_tokens(batch["input_ids"][0][batch["labels"][0] != -100].tolist())]
    assert learned == [["the", "person", "walks", "left", ".", "<|im_end|>", "turn", "right", "<|im_end|>"]]
    assert tokenizer.convert_ids_to_tokens(batch["input_ids"][1][batch["labels"][1] != -100].tolist()) == ["left", "<|im_end|>"]
    # the model takes the batch as it is
    model = tiny_model(processor)
    assert torch.isfinite(model(**batch).loss)


def test_shorthand_format_equals_canonical(tmp_path, processor):
    np.save(tmp_path / "m.npy", JOINTS[:30])
    canonical = {"id": "x", "messages": [
        {"role": "user", "content": [{"type": "motion", "path": "m.npy", "fps": 20}, {"type": "text", "text": "what does the person do?"}]},
        {"role": "assistant", "content": "jump"}]}
    shorthand = {"id": "x", "motion": "m.npy", "motion_fps": 20,
                 "conversations": [{"from": "human", "value": "<motion>\nwhat does the person do?"}, {"from": "gpt", "value": "jump"}]}
    write_jsonl([canonical], tmp_path / "a.jsonl")
    write_jsonl([shorthand], tmp_path / "b.jsonl")
    a, b = load_conversations(str(tmp_path / "a.jsonl"))[0], load_conversations(str(tmp_path / "b.jsonl"))[0]
    assert a == b
    assert os.path.isabs(a["messages"][0]["content"][0]["path"])
    collator = LlamoDataCollator(processor)
    batch_a, batch_b = collator([a]), collator([b])
    assert all(torch.equal(batch_a[key], batch_b[key]) for key in batch_a)
    prompts, references, ids = LlamoGenerationCollator(processor)([a])
    assert references == ["jump"] and ids == ["x"]
    assert prompts["input_ids"][0, -3:].tolist() == processor.tokenizer.convert_tokens_to_ids(["<|im_start|>", "assistant", "\n"])


def test_missing_and_corrupt_media_are_reported_and_skipped_or_raised(tmp_path, processor, caplog):
    np.save(tmp_path / "good.npy", JOINTS[:30])
    (tmp_path / "corrupt.npy").write_bytes(b"not a numpy file")
    rows = [{"id": name, "motion": f"{name}.npy", "motion_fps": 20,
             "conversations": [{"from": "human", "value": "what?"}, {"from": "gpt", "value": "jump"}]}
            for name in ("good", "corrupt", "missing")]
    write_jsonl(rows, tmp_path / "d.jsonl")
    missing = str(tmp_path / "missing.npy")

    with pytest.raises(MediaError, match="missing.npy") as error:  # found at load time
        load_conversations(str(tmp_path / "d.jsonl"))
    assert error.value.failures[0]["path"] == missing
    with caplog.at_level(logging.WARNING):
        dataset = load_conversations(str(tmp_path / "d.jsonl"), on_error="skip")
    assert dataset["id"] == ["good", "corrupt"] and missing in caplog.text

    corrupt = str(tmp_path / "corrupt.npy")
    with pytest.raises(MediaError, match="corrupt.npy"):  # found when decoding, in the collator
        LlamoDataCollator(processor)([dataset[0], dataset[1]])
    skipping = LlamoDataCollator(processor, on_error="skip", record_ids=True)
    with caplog.at_level(logging.WARNING):
        batch = skipping([dataset[0], dataset[1]])
    assert batch["input_ids"].shape[0] == 1 and skipping.seen_ids == ["good"]
    assert skipping.skipped[0]["id"] == "corrupt" and skipping.skipped[0]["path"] == corrupt and corrupt in caplog.text
    assert torch.equal(batch["input_ids"], LlamoDataCollator(processor)([dataset[0]])["input_ids"])  # never a wrong batch
    with pytest.raises(MediaError, match="every sample"):
        skipping([dataset[1]])
    kept, failures = check_media(dataset, processor, on_error="skip")
    assert kept["id"] == ["good"] and [f["path"] for f in failures] == [corrupt]


def test_dataset_adapters(tmp_path, processor):
    # HumanML3D: texts/<id>.txt "caption#tokens#start#end", new_joints/<id>.npy, split files
    root = tmp_path / "HumanML3D"
    (root / "texts").mkdir(parents=True)
    (root / "new_joints").mkdir()
    for motion_id in ("000001", "000002"):
        np.save(root / "new_joints" / f"{motion_id}.npy", JOINTS[:60])
    (root / "texts" / "000001.txt").write_text("a person walks forward.#a/DET person/NOUN#0.0#0.0\n"
                                              "someone jumps.#someone/PRON#1.0#2.5\n")
    (root / "texts" / "000002.txt").write_text("a man turns left.#a/DET#0.0#0.0\n")
    (root / "train.txt").write_text("000001\n000002\n")
    dataset = humanml3d_conversations(str(root), "train", representation="joints22")
    assert [row["messages"][1]["content"][0]["text"] for row in dataset] == ["a person walks forward.", "a man turns left."]
    cropped = humanml3d_conversations(str(root), "train", representation="joints22", crop_dir=str(tmp_path / "crops"))
    assert len(cropped) == 3 and np.load(cropped[1]["messages"][0]["content"][0]["path"]).shape[0] == 30  # 1.0-2.5 s
    assert LlamoDataCollator(processor)(list(cropped))["labels"].shape[0] == 3
    with pytest.raises(ValueError, match="SMPL rotations"):
        humanml3d_conversations(str(root), "train", representation="smpl22_rot6d_joints")

    # KIT-ML: same text layout; its 21-joint motions are refused with a clear message, 22-joint ones work
    kit = tmp_path / "KIT-ML"
    (kit / "texts").mkdir(parents=True)
    (kit / "new_joints").mkdir()
    np.save(kit / "new_joints" / "00001.npy", np.zeros((20, 21, 3), np.float32))
    (kit / "texts" / "00001.txt").write_text("a person waves.#a/DET#0.0#0.0\n")
    (kit / "train.txt").write_text("00001\n")
    with pytest.raises(ValueError, match="21-joint"):
        kitml_conversations(str(kit), "train")
    (kit / "smpl").mkdir()
    np.save(kit / "smpl" / "00001.npy", JOINTS[:25])
    assert len(kitml_conversations(str(kit), "train", motion_dir=str(kit / "smpl"))) == 1

    # BABEL-QA layout (questions.json + split_question_ids.json + motion_sequences/<id>/joints.npy, Z-up, 30 fps)
    babel = tmp_path / "babel-qa"
    (babel / "motion_sequences" / "7").mkdir(parents=True)
    z_up = JOINTS[:45] @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float32)  # (x, y, z) -> (x, -z, y)
    np.save(babel / "motion_sequences" / "7" / "joints.npy", z_up)
    questions = {"q0": {"question": "what does the person do before they turn left?", "answer": "walk",
                        "query_type": "query_action", "relation_type": "before", "babel_id": "7", "question_id": "q0"},
                 "q1": {"question": "which direction does the person walk?", "answer": "forward",
                        "query_type": "query_direction", "relation_type": "no_relation", "babel_id": "7", "question_id": "q1"}}
    (babel / "questions.json").write_text(json.dumps(questions))
    (babel / "split_question_ids.json").write_text(json.dumps({"train": ["q0"], "val": ["q1"], "test": []}))
    train = babel_qa_conversations(str(babel), "train", representation="joints22")
    assert train["id"] == ["babel_qa/train/q0"]
    assert json.loads(train[0]["metadata"])["query_type"] == "query_action"
    block = train[0]["messages"][0]["content"][0]
    assert block["up_axis"] == "z" and block["fps"] == 30.0
    # the Z-up joints are read as Z-up: the same features as the original Y-up motion
    np.save(tmp_path / "y_up.npy", JOINTS[:45])
    y_up = load_conversations_from_rows(tmp_path, {"type": "motion", "path": str(tmp_path / "y_up.npy"), "fps": 30})
    collator = LlamoDataCollator(processor)
    torch.testing.assert_close(collator([train[0]])["motion_values"], collator([y_up])["motion_values"], atol=1e-4, rtol=1e-4)


def load_conversations_from_rows(folder, motion_block):
    write_jsonl([{"id": "y", "messages": [{"role": "user", "content": [motion_block, {"type": "text", "text": "what?"}]},
                                          {"role": "assistant", "content": "walk"}]}], folder / "y.jsonl")
    return load_conversations(str(folder / "y.jsonl"))[0]


def test_collator_builds_key_frame_targets_from_the_questions_segments(tmp_path, processor):
    """`babel_qa_conversations(focus=True)` + `LlamoDataCollator(key_frame_targets=True)`: 1 exactly on the valid
    timeline frames inside the spans of the segments a question is about, 0 on padding and for questions that name
    no segment (descriptions); the model's grounding loss reads them. `asked_frame_targets=True`: the same for the
    asked segment alone, which the asked-span head's loss reads."""
    from llamo.data.motion_qa import generate_suite

    generate_suite(tmp_path, num_sequences=8, seed=1)
    rows = babel_qa_conversations(str(tmp_path), "train", representation="joints22", focus=True)
    concepts = json.loads((tmp_path / "motion_concepts.json").read_text())
    chosen = [row for row in rows if "focus_seconds" in json.loads(row["metadata"])][:5]
    chosen.append(next(row for row in rows if json.loads(row["metadata"])["query_type"] == "query_description"))
    assert "focus_seconds" not in json.loads(chosen[-1]["metadata"])
    batch = LlamoDataCollator(processor, key_frame_targets=True, asked_frame_targets=True)(chosen)
    targets, times, valid = batch["key_frame_targets"], batch["frame_timestamps"], batch["motion_mask"].bool()
    assert targets.shape == times.shape == batch["asked_frame_targets"].shape
    for row, example in enumerate(chosen):
        metadata = json.loads(example["metadata"])
        segments = concepts[metadata["babel_id"]]
        assert len(metadata.get("asked_seconds", [])) == (1 if "focus_seconds" in metadata else 0)
        for t in range(times.shape[1]):
            for name, spans in (("key_frame_targets", "focus_seconds"), ("asked_frame_targets", "asked_seconds")):
                inside = any(start <= float(times[row, t]) < end for start, end in metadata.get(spans, []))
                assert batch[name][row, t] == float(inside and bool(valid[row, t])), (name, row, t)
        if "focus_seconds" in metadata:
            assert all(any(abs(start - s["start_f"] / 30.0) < 1e-9 for s in segments)
                       for start, _ in metadata["focus_seconds"])  # spans are the suite's segments
            assert targets[row].sum() > 0
    assert targets[-1].sum() == 0
    assert batch["asked_frame_targets"].sum() <= targets.sum()  # the asked segment is one of those
    model = tiny_model(processor, key_frame_grounding_weight=1.0, use_asked_span_head=True)
    out = model(**batch)
    assert out.grounding_loss is not None and out.asked_span_loss is not None and torch.isfinite(out.loss)


def test_collator_builds_count_targets_from_the_counting_questions(tmp_path, processor):
    """`LlamoDataCollator(count_targets=True)`: each counting question's gold count, 0 for every other question;
    a model with the count head turns them into its loss."""
    from llamo.data.motion_qa import generate_suite

    generate_suite(tmp_path, num_sequences=8, seed=1)
    rows = babel_qa_conversations(str(tmp_path), "train", representation="joints22", focus=True)
    kinds = [json.loads(row["metadata"])["query_type"] for row in rows]
    chosen = [rows[i] for i, kind in enumerate(kinds) if kind == "query_count"][:3]
    chosen += [rows[i] for i, kind in enumerate(kinds) if kind != "query_count"][:2]
    assert len(chosen) == 5
    batch = LlamoDataCollator(processor, asked_frame_targets=True, count_targets=True)(chosen)
    expected = [float(json.loads(row["metadata"])["answer"]) for row in chosen[:3]] + [0.0, 0.0]
    assert batch["count_targets"].tolist() == expected and min(expected[:3]) >= 1
    model = tiny_model(processor, use_asked_span_head=True, use_count_head=True,
                       count_word_token_ids=list(range(10, 22)))
    out = model(**batch)
    assert out.count_loss is not None and out.repetition_counts.shape == (5,) and torch.isfinite(out.loss)


def test_score_answer():
    metadata = {"query_type": "query_action", "answer": "walk"}
    assert score_answer("The person is walking.", "walk", metadata)
    assert not score_answer("running", "walk", metadata)
    assert score_answer("Turn left.", "turn left") and not score_answer("turn right", "turn left")


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


def _training_args(output_dir, **overrides):
    from transformers import TrainingArguments

    kwargs = dict(output_dir=str(output_dir), use_cpu=True, remove_unused_columns=False, label_names=["labels"],
                  per_device_train_batch_size=4, learning_rate=5e-3, max_steps=4, logging_steps=1, save_strategy="no",
                  report_to="none", seed=0, dataloader_num_workers=0, disable_tqdm=True)
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def test_trainer_steps_lower_the_loss_and_evaluate_by_generation(workspace, processor, tmp_path):
    train = load_conversations(str(workspace / "data" / "train.jsonl"))
    val = load_conversations(str(workspace / "data" / "val.jsonl"))
    collator = LlamoDataCollator(processor)
    model = tiny_model(processor)
    model = prepare_model_for_stage(model, stage="instruction", lm_training="full")
    probe = collator([train[i] for i in range(8)])
    with torch.no_grad():
        before = model(**probe).loss.item()
    trainer = LlamoTrainer(model=model, args=_training_args(tmp_path, max_steps=4, per_device_eval_batch_size=2),
                           train_dataset=train, data_collator=collator, processing_class=processor,
                           generation_eval_dataset=val, generation_max_samples=2, max_new_tokens=4)
    trainer.train()
    with torch.no_grad():
        after = model(**probe).loss.item()
    assert after < before - 0.1, (before, after)
    metrics = trainer.evaluate()
    assert metrics["eval_generation_samples"] == 2 and 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert len((tmp_path / "predictions" / "step-4.jsonl").read_text().splitlines()) == 2


def test_training_augmentation_stays_out_of_evaluation(workspace, processor, tmp_path):
    """The Trainer's training batches go through the collator's augmentation (here: always mirror), its evaluation
    batches do not."""
    train = load_conversations(str(workspace / "data" / "train.jsonl"))
    val = load_conversations(str(workspace / "data" / "val.jsonl"))
    mirror = MirrorMotion(processor.feature_extractor, probability=1.0)
    collator = LlamoDataCollator(processor, augment=mirror)
    trainer = LlamoTrainer(model=tiny_model(processor), args=_training_args(tmp_path, per_device_eval_batch_size=4),
                           train_dataset=train, eval_dataset=val, data_collator=collator, processing_class=processor)
    evaluated = next(iter(trainer.get_eval_dataloader()))
    plain = LlamoDataCollator(processor)([val[i] for i in range(4)])
    assert torch.equal(evaluated["motion_values"], plain["motion_values"]) and mirror.seen == 0
    assert trainer.data_collator is collator
    trained = next(iter(trainer.get_train_dataloader()))
    assert mirror.mirrored == mirror.seen >= 4  # (accelerate collates one batch ahead)
    words = processor.tokenizer.convert_ids_to_tokens(trained["input_ids"][trained["labels"] != -100].tolist())
    assert "left" not in words  # every "turn left" answer was mirrored...
    assert "right" in words or "turn" not in words  # ... into "turn right"


def test_finetune_script_mirrors_on_request(workspace, tmp_path):
    finetune = load_example("finetune")
    common = ["--model", str(workspace / "tiny"), "--train_file", str(workspace / "data" / "train.jsonl"),
              "--max_steps", "2", "--per_device_train_batch_size", "4", "--lora_r", "4", "--disable_tqdm", "true",
              "--dataloader_num_workers", "0", "--output_dir", str(tmp_path)]
    trainer = finetune.main(common + ["--mirror_probability", "1", "--stop_after_steps", "1"])
    mirror = trainer.data_collator.augment
    assert isinstance(mirror, MirrorMotion) and mirror.mirrored == mirror.seen > 0
    with pytest.raises(ValueError, match="probability"):
        finetune.main(common + ["--mirror_probability", "2"])


def test_finetune_script_trains_the_key_frame_grounding_on_babel_qa(workspace, tmp_path):
    from llamo.data.motion_qa import generate_suite

    suite = tmp_path / "suite"
    generate_suite(suite, num_sequences=8, seed=1)
    finetune = load_example("finetune")
    common = ["--model", str(workspace / "tiny"), "--dataset", "babel_qa", "--dataset_root", str(suite),
              "--eval_split", "", "--max_steps", "1", "--per_device_train_batch_size", "4", "--lora_r", "4",
              "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--generation_eval_samples", "0",
              "--output_dir", str(tmp_path / "run")]
    trainer = finetune.main(common + ["--key_frame_grounding", "0.5", "--stop_after_steps", "1"])
    assert trainer.data_collator.key_frame_targets
    assert trainer.model.base_model.model.config.key_frame_grounding_weight == 0.5
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert batch["key_frame_targets"].sum() > 0
    with pytest.raises(ValueError, match="no BABEL-QA questions in split 'test'"):
        finetune.main(common[:-2] + ["--eval_split", "test", "--output_dir", str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="babel_qa"):
        finetune.main(["--model", str(workspace / "tiny"), "--train_file", str(workspace / "data" / "train.jsonl"),
                       "--key_frame_grounding", "0.5", "--output_dir", str(tmp_path / "bad")])


def test_alignment_stage_trains_new_modules_only(processor):
    model = prepare_model_for_stage(tiny_model(processor), stage="alignment")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith(("model.language_model.", "lm_head.", "model.frame_encoder.vision_tower.")) for n in trainable)
    assert any(n.startswith("model.cross_talker.") for n in trainable)
    assert any(n.startswith("model.multi_modal_projector.") for n in trainable)


def test_lora_adapter_saves_reloads_and_merges(workspace, processor, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base_dir = str(workspace / "tiny")
    model = prepare_model_for_stage(AutoModelForImageTextToText.from_pretrained(base_dir, dtype=torch.float32),
                                    stage="instruction", lora_r=4, lora_alpha=8)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n and "language_model" in n and "q_proj" in n for n in trainable)
    assert not any("lora_" in n and "cross_talker" in n for n in trainable)  # LoRA on the LM's attention only
    assert {name for name in new_module_names(model.get_base_model())} >= {"model.cross_talker", "model.multi_modal_projector"}
    train = load_conversations(str(workspace / "data" / "train.jsonl"))
    collator = LlamoDataCollator(processor)
    LlamoTrainer(model=model, args=_training_args(tmp_path / "run", max_steps=2), train_dataset=train,
                 data_collator=collator, processing_class=processor).train()
    batch = collator([train[0], train[1]])
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()

    fresh = AutoModelForImageTextToText.from_pretrained(base_dir, dtype=torch.float32)
    with torch.no_grad():
        assert not torch.allclose(fresh(**batch).logits, expected, atol=1e-4)  # training changed something
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-4, rtol=1e-4)


def test_interrupt_and_resume_gives_identical_weights(workspace, tmp_path):
    finetune = load_example("finetune")
    common = ["--model", str(workspace / "tiny"), "--train_file", str(workspace / "data" / "train.jsonl"),
              "--max_steps", "5", "--per_device_train_batch_size", "4", "--save_steps", "2", "--logging_steps", "1",
              "--lora_r", "4", "--learning_rate", "5e-3", "--seed", "3", "--disable_tqdm", "true"]
    full, interrupted = tmp_path / "full", tmp_path / "interrupted"
    # The uninterrupted run also evaluates (loss + generation-based accuracy, after training: the weights compared
    # below are dumped before) and writes the final folder checked at the end.
    finetune.main(common + ["--output_dir", str(full), "--dump_rank_state", str(full / "ranks"),
                            "--eval_file", str(workspace / "data" / "val.jsonl"), "--generation_eval_samples", "2",
                            "--max_new_tokens", "3", "--per_device_eval_batch_size", "2"])
    # stopped after step 2, mid-epoch (3 steps per epoch), then resumed from the newest checkpoint
    finetune.main(common + ["--output_dir", str(interrupted), "--stop_after_steps", "2"])
    assert sorted(p.name for p in interrupted.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint-2"]
    assert not (interrupted / "final").exists()
    finetune.main(common + ["--output_dir", str(interrupted), "--resume_from_checkpoint", "last",
                            "--dump_rank_state", str(interrupted / "ranks")])
    a, b = torch.load(full / "ranks" / "rank0.pt"), torch.load(interrupted / "ranks" / "rank0.pt")
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        assert torch.equal(a[name], b[name]), name
    state = json.loads((full / "trainer_state.json").read_text())
    assert any("eval_accuracy" in entry for entry in state["log_history"])  # generation-based evaluation ran
    assert any("loss" in entry for entry in state["log_history"])

    # the final folder: merged model + processor + remote code + model card, loadable in a fresh process
    final = full / "final"
    assert check_hub_folder(str(final)) == []
    assert (full / "adapter" / "adapter_model.safetensors").exists()
    card = (final / "README.md").read_text()
    header = card.split("---")[1]
    for field in ("license: apache-2.0", "base_model:", "library_name: transformers", "pipeline_tag:", "model-index:",
                  "- llamo"):
        assert field in header, field
    for section in ("## Training", "## Evaluation", "## Usage", "## Licence", "trust_remote_code=True", "| stage | instruction |"):
        assert section in card, section
    code = (
        "import sys, torch\n"
        "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
        f"folder = {str(final)!r}\n"
        "model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32)\n"
        "processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)\n"
        "assert 'modeling_llamo' not in sys.modules, 'loaded the installed package, not the remote code'\n"
        "messages = [{'role': 'user', 'content': [{'type': 'motion', 'motion': {'joints': torch.zeros(20, 22, 3).numpy(), 'fps': 20}},"
        " {'type': 'text', 'text': 'what does the person do?'}]}]\n"
        "inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors='pt')\n"
        "out = model.generate(**inputs, max_new_tokens=3, do_sample=False)\n"
        "print('OK', type(model).__module__, out.shape)\n"
    )
    env = _env()
    env["PYTHONPATH"] = ""  # a fresh process that does not see this checkout: only the folder's own code
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK transformers_modules" in done.stdout


def test_two_processes_see_different_data_and_end_identical(workspace, tmp_path):
    out = tmp_path / "ddp"
    command = [
        os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch",
        "--config_file", os.path.join(REPO, "examples", "accelerate", "ddp.yaml"),
        "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
        os.path.join(REPO, "examples", "finetune.py"),
        "--model", str(workspace / "tiny"), "--train_file", str(workspace / "data" / "train.jsonl"),
        "--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "2", "--save_steps", "100",
        "--logging_steps", "1", "--lora_r", "4", "--learning_rate", "5e-3", "--dump_rank_state", str(out / "ranks"),
        "--disable_tqdm", "true",
    ]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    seen0, seen1 = set(ranks[0]["seen_ids"]), set(ranks[1]["seen_ids"])
    assert seen0 and seen1 and not seen0 & seen1  # each rank its own shard of the data
    w0, w1 = torch.load(out / "ranks" / "rank0.pt"), torch.load(out / "ranks" / "rank1.pt")
    assert w0.keys() == w1.keys() and len(w0) > 0
    for name in w0:
        assert torch.equal(w0[name], w1[name]), name
    assert check_hub_folder(str(out / "final")) == []


def test_model_card_for_an_adapter_folder():
    card = render_model_card("llamo-babel-lora", base_model="me/llamo-smollm2", datasets=["babel-qa"],
                             training={"stage": "instruction"}, eval_results={"BABEL-QA": {"accuracy": 0.41}},
                             license="other", license_name="my-licence", license_link="LICENSE", is_adapter=True,
                             repo_id="me/llamo-babel-lora")
    header, body = card.split("---")[1], card.split("---", 2)[2]
    assert "license: other" in header and "license_name: my-licence" in header and "base_model: me/llamo-smollm2" in header
    assert "library_name: peft" in header and "value: 0.41" in header
    assert "PeftModel.from_pretrained(base, \"me/llamo-babel-lora\")" in body
    assert "| BABEL-QA | 0.41 | accuracy 0.458 |" in body
