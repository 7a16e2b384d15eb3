"""Training-time augmentation: the left-right mirror of motions and their conversations (llamo.data.augment)."""

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llamo.data.augment import MirrorMotion, swap_sides
from llamo.data.conversations import LlamoDataCollator, load_conversations, write_jsonl
from llamo.data.motion_qa import SegmentSpec, SequenceSpec, generate_sequence
from llamo.training.tiny import tiny_processor
from processing_llamo.motion_processing_llamo import joints_features
from processing_llamo.skeleton import MIRRORED_JOINTS, SMPL_JOINT_NAMES, bone_lengths, mirror_joints

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
JOINTS = np.load(os.path.join(FIXTURES, "humanml3d", "012314_joints22.npy"))  # (170, 22, 3), 20 fps, Y-up
VIDEO = os.path.join(FIXTURES, "videos", "part_0.mp4")


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


def test_mirrored_joints_swap_names_and_are_an_involution():
    for index, twin in enumerate(MIRRORED_JOINTS):
        name = SMPL_JOINT_NAMES[index]
        expected = name.replace("left", "right") if "left" in name else name.replace("right", "left")
        assert SMPL_JOINT_NAMES[twin] == expected
    mirrored = mirror_joints(JOINTS)
    np.testing.assert_allclose(mirror_joints(mirrored), JOINTS)
    # a reflection keeps every bone's length (the twin bones trade places)
    np.testing.assert_allclose(bone_lengths(mirrored), bone_lengths(JOINTS)[:, MIRRORED_JOINTS[1:] - 1], rtol=1e-6)
    with pytest.raises(ValueError, match="22, 3"):
        mirror_joints(JOINTS[:, :21])


def test_mirroring_a_left_hand_wave_gives_a_right_hand_wave_and_a_left_turn_a_right_turn():
    rng = np.random.default_rng(3)
    wave = generate_sequence(rng, SequenceSpec([SegmentSpec("wave", count=3, side="left")]))
    mirrored = mirror_joints(wave.joints)
    # the mirror's right wrist (21) goes above the head, its left one (20) does not (as a generated right wave)
    assert mirrored[:, 21, 1].max() > mirrored[:, 15, 1].max()
    assert mirrored[:, 20, 1].max() < mirrored[:, 0, 1].max() + 0.2
    turn = generate_sequence(rng, SequenceSpec([SegmentSpec("turn", direction="left", duration=2.0, turn_angle=90.0)]))
    times = np.arange(len(turn.joints)) / turn.fps
    yaw_rate = joints_features(turn.joints, times)[:, 3]
    mirrored_yaw_rate = joints_features(mirror_joints(turn.joints), times)[:, 3]
    assert yaw_rate.sum() > 0 > mirrored_yaw_rate.sum()  # the features see a turn to the other side
    np.testing.assert_allclose(mirrored_yaw_rate, -yaw_rate, atol=1e-5)  # float32 joints


def test_features_of_the_mirror_are_the_mirrored_features():
    """joints22 features are equivariant: sideways velocity and yaw rate change sign, local joints swap and flip x."""
    times = np.arange(len(JOINTS)) / 20.0
    features = joints_features(JOINTS, times)
    mirrored = joints_features(mirror_joints(JOINTS), times)
    root, local = features[:, :4], features[:, 4:].reshape(len(JOINTS), 22, 3)
    expected_local = local[:, MIRRORED_JOINTS] * np.array([-1.0, 1.0, 1.0])
    expected = np.concatenate([root * np.array([1.0, -1.0, 1.0, -1.0]), expected_local.reshape(len(JOINTS), -1)], -1)
    np.testing.assert_allclose(mirrored, expected, atol=1e-5)  # float32 joints


def test_swap_sides_swaps_whole_words_and_keeps_case():
    assert swap_sides("Left hand, then right? LEFT. leftover, bright, righteous") == \
        "Right hand, then left? RIGHT. leftover, bright, righteous"
    assert swap_sides("forward") == "forward"


def _rows(tmp_path):
    np.save(tmp_path / "a.npy", JOINTS[:40])
    rows = [
        {"id": "motion", "messages": [
            {"role": "user", "content": [{"type": "motion", "path": "a.npy", "fps": 20},
                                         {"type": "text", "text": "what body part does the person use?"}]},
            {"role": "assistant", "content": "the left arm, then the right leg"},
        ]},
        {"id": "video", "messages": [
            {"role": "user", "content": [{"type": "video", "path": VIDEO}, {"type": "motion", "path": "a.npy", "fps": 20},
                                         {"type": "text", "text": "which direction?"}]},
            {"role": "assistant", "content": "left"},
        ]},
    ]
    write_jsonl(rows, tmp_path / "d.jsonl")
    return load_conversations(str(tmp_path / "d.jsonl"))


def _answer(processor, batch, row):
    return processor.tokenizer.convert_ids_to_tokens(batch["input_ids"][row][batch["labels"][row] != -100].tolist())


def test_collator_mirrors_motion_and_text_together(tmp_path, processor):
    dataset = _rows(tmp_path)
    plain = LlamoDataCollator(processor)([dataset[0], dataset[1]])
    mirror = MirrorMotion(processor.feature_extractor, probability=1.0)
    batch = LlamoDataCollator(processor, augment=mirror)([dataset[0], dataset[1]])
    assert (mirror.seen, mirror.mirrored) == (1, 1)  # the clip with a video is left alone
    assert _answer(processor, batch, 0) == ["the", "right", "arm", ",", "then", "the", "left", "leg", "<|im_end|>"]
    assert _answer(processor, batch, 1) == _answer(processor, plain, 1)
    assert torch.equal(batch["pixel_values_videos"], plain["pixel_values_videos"])
    # row 0's motion is exactly the processor's features of the mirrored joints
    expected = processor.feature_extractor(mirror_joints(JOINTS[:40]), fps=20.0, return_tensors="pt")
    frames = int(expected["motion_mask"][0].sum())
    torch.testing.assert_close(batch["motion_values"][0, :frames], expected["motion_values"][0, :frames])
    assert not torch.allclose(batch["motion_values"][0, :frames], plain["motion_values"][0, :frames])
    # the question names no side; everything but the answer's two side words is unchanged
    changed = batch["input_ids"][0] != plain["input_ids"][0]
    assert int(changed.sum()) == 2 and bool((batch["labels"][0][changed] != -100).all())


def test_mirror_draws_are_seeded_and_follow_the_probability(tmp_path, processor):
    dataset = _rows(tmp_path)
    conversation = [{"role": "user", "content": [{"type": "motion", "motion": JOINTS[:30], "fps": 20.0},
                                                 {"type": "text", "text": "left or right?"}]}]

    def decisions(seed, probability):
        mirror = MirrorMotion(processor.feature_extractor, probability=probability, seed=seed)
        return [mirror(conversation)[0]["content"][1]["text"] == "right or left?" for _ in range(400)]

    assert decisions(0, 0.5) == decisions(0, 0.5) != decisions(1, 0.5)
    assert 150 < sum(decisions(0, 0.5)) < 250
    assert not any(decisions(0, 0.0)) and all(decisions(0, 1.0))
    never = LlamoDataCollator(processor, augment=MirrorMotion(processor.feature_extractor, probability=0.0))
    assert torch.equal(never([dataset[0]])["motion_values"], LlamoDataCollator(processor)([dataset[0]])["motion_values"])


def test_mirror_refuses_what_it_cannot_mirror(processor):
    with pytest.raises(ValueError, match="probability"):
        MirrorMotion(processor.feature_extractor, probability=1.5)
    with pytest.raises(ValueError, match="joints22"):
        MirrorMotion(tiny_processor(representation="smpl22_rot6d").feature_extractor)


def test_each_dataloader_worker_draws_its_own_stream(processor, monkeypatch):
    conversation = [{"role": "user", "content": [{"type": "motion", "motion": JOINTS[:30], "fps": 20.0},
                                                 {"type": "text", "text": "left"}]}]
    mirror = MirrorMotion(processor.feature_extractor, probability=0.5, seed=3)

    def draws(worker_id):
        monkeypatch.setattr(torch.utils.data, "get_worker_info",
                            lambda: None if worker_id is None else SimpleNamespace(id=worker_id))
        return [mirror(conversation)[0]["content"][1]["text"] == "right" for _ in range(64)]

    main, first, second = draws(None), draws(0), draws(1)
    assert main == [value < 0.5 for value in np.random.default_rng(3).random(64)]
    assert first == [value < 0.5 for value in np.random.default_rng([3, 1]).random(64)]
    assert len({tuple(main), tuple(first), tuple(second)}) == 3
