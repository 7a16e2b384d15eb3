"""The procedurally generated motion-QA suite (llamo.data.motion_qa) and its renderer (llamo.data.render)."""

import itertools
import json
import os

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from llamo.data import motion_qa as mqa
from llamo.data.motion_qa import (
    ACTION_NAMES,
    BABEL_QA_BODY_PARTS,
    BABEL_QA_DIRECTIONS,
    HELDOUT_SPEED_RANGE,
    SegmentSpec,
    SequenceSpec,
    babel_joints,
    count_airborne,
    count_maxima,
    count_minima,
    generate_sequence,
    generate_suite,
    load_babel_qa,
    make_questions,
    sample_spec,
)
from llamo.data.render import Camera, RenderStyle, render_motion, write_video
from processing_llamo.motion_formats import load_motion
from processing_llamo.rotations import axis_angle_to_matrix
from processing_llamo.skeleton import forward_kinematics


def _segment(sample, i):
    s = sample.segments[i]
    return slice(s["start_f"], s["end_f"])


# ----------------------------------------------------------------------------------------------
# labels are respected
# ----------------------------------------------------------------------------------------------


def test_seven_squats_have_seven_pelvis_minima():
    sample = generate_sequence(np.random.default_rng(0), SequenceSpec([SegmentSpec("squat", count=7)]))
    pelvis_height = sample.joints[:, 0, 1]
    assert count_minima(pelvis_height, prominence=0.08) == 7
    assert sample.segments[0]["count"] == 7 and sample.fps == 30.0


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    speed=st.floats(0.6, 1.7),
    amplitude=st.floats(0.75, 1.25),
    before=st.sampled_from(["walk", "jump", "wave", "lunge", "sit", "jumping jacks", None]),
)
def test_squat_count_inside_a_sequence(count, seed, speed, amplitude, before):
    """Within its labelled frames, a squat segment's pelvis height has exactly ``count`` minima,
    whatever the subject, speed, amplitude, timing jitter, noise and neighbouring action."""
    rng = np.random.default_rng(seed)
    segs = [SegmentSpec("squat", count=count, speed=speed, amplitude=amplitude)]
    if before is not None:
        prev = mqa._sample_segment(rng, before, mqa.SPEED_RANGE)
        segs = [prev] + ([SegmentSpec("stand up", duration=2.0)] if before == "sit" else []) + segs
    spec = SequenceSpec(segs, subject=mqa._sample_subject(rng))
    sample = generate_sequence(rng, spec)
    y = sample.joints[_segment(sample, len(segs) - 1), 0, 1]
    assert count_minima(y, prominence=0.08) == count


@pytest.mark.parametrize("count", [1, 4, 9])
def test_other_counts(count):
    rng = np.random.default_rng(count)
    jumps = generate_sequence(rng, SequenceSpec([SegmentSpec("jump", count=count, direction="forward")]))
    assert count_airborne(jumps.joints) == count
    assert jumps.joints[-1, 0, 2] - jumps.joints[0, 0, 2] > 0.2 * count  # heading 0: forward is +z
    jacks = generate_sequence(rng, SequenceSpec([SegmentSpec("jumping jacks", count=count)]))
    assert count_maxima(jacks.joints[:, 20, 1], 0.3) == count  # left wrist above the head once per jack
    lunges = generate_sequence(rng, SequenceSpec([SegmentSpec("lunge", count=count, side="left", direction="forward")]))
    assert count_minima(lunges.joints[:, 0, 1], 0.08) == count


def test_sides_and_directions():
    rng = np.random.default_rng(3)
    wave = generate_sequence(rng, SequenceSpec([SegmentSpec("wave", count=3, side="right")]))
    # right wrist (21) goes above the head, the left one (20) does not
    assert wave.joints[:, 21, 1].max() > wave.joints[:, 15, 1].max()
    assert wave.joints[:, 20, 1].max() < wave.joints[:, 0, 1].max() + 0.2
    assert wave.segments[0]["body_part"] == "right hand"
    kick = generate_sequence(rng, SequenceSpec([SegmentSpec("kick", count=2, side="left", direction="forward")]))
    assert kick.joints[:, 10, 1].max() > 0.5 > kick.joints[:, 11, 1].max()
    assert kick.segments[0]["body_part"] == "left foot" and kick.segments[0]["direction"] == "forward"
    for direction, axis, sign in (("forward", 2, 1), ("backwards", 2, -1), ("left", 0, 1), ("right", 0, -1)):
        walk = generate_sequence(rng, SequenceSpec([SegmentSpec("walk", direction=direction, duration=3.0)]))
        disp = walk.trans[-1] - walk.trans[0]
        assert sign * disp[axis] > 0.8 and abs(disp[2 - axis]) < 0.3, (direction, disp)
    turn = generate_sequence(rng, SequenceSpec([SegmentSpec("turn", direction="left", duration=2.0, turn_angle=90.0)]))
    fwd = axis_angle_to_matrix(turn.rotations[[0, -1], 0].astype(np.float64))[:, :, 2]  # body forward
    yaw = np.degrees(np.arctan2(fwd[:, 0], fwd[:, 2]))
    assert 70 < yaw[1] - yaw[0] < 110  # left turn: +yaw about +y


def test_generate_sequence_is_deterministic_and_varied():
    spec = sample_spec(np.random.default_rng(7))
    a = generate_sequence(np.random.default_rng(1), spec)
    b = generate_sequence(np.random.default_rng(1), spec)
    np.testing.assert_array_equal(a.joints, b.joints)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    c = generate_sequence(np.random.default_rng(2), spec)
    assert not np.array_equal(a.joints, c.joints)
    # forward kinematics of the stored rotations reproduce the stored joints
    joints, _ = forward_kinematics(axis_angle_to_matrix(a.rotations.astype(np.float64)), a.trans, a.offsets.astype(np.float64))
    np.testing.assert_allclose(joints, a.joints, atol=1e-4)
    assert abs(a.joints[..., 1].min() - mqa.FOOT_CLEARANCE) < 0.02  # on the floor


# ----------------------------------------------------------------------------------------------
# questions
# ----------------------------------------------------------------------------------------------


def test_questions_follow_babel_qa():
    segments = [
        {"action": "walk", "direction": "forward", "count": None, "side": None, "body_part": None, "speed_factor": 1.0},
        {"action": "squat", "direction": None, "count": 7, "side": None, "body_part": None, "speed_factor": 1.0},
        {"action": "wave", "direction": None, "count": 3, "side": "right", "body_part": "right hand", "speed_factor": 1.0},
    ]
    qs = {q["question"]: q for q in make_questions(segments, babel_id="x")}
    expect = {
        "What action does the person do before they squat?": ("walk", "query_action", "before"),
        "What action does the person do after they squat?": ("wave", "query_action", "after"),
        "What action does the person do after they walk and before they wave?": ("squat", "query_action", "in_between"),
        "What direction does the person move while they walk?": ("forward", "query_direction", "no_relation"),
        "What body part does the person use while they wave?": ("right hand", "query_body_part", "no_relation"),
        "What action does the person do while they use their right hand?": ("wave", "query_action", "no_relation"),
        "What direction does the person move before they squat?": ("forward", "query_direction", "before"),
        "How many times does the person squat?": ("7", "query_count", "no_relation"),
        "How many times does the person wave?": ("3", "query_count", "no_relation"),
    }
    for text, (answer, qtype, rel) in expect.items():
        assert text in qs, text
        assert (qs[text]["answer"], qs[text]["query_type"], qs[text]["relation_type"]) == (answer, qtype, rel)
    between = qs["What action does the person do after they walk and before they wave?"]
    assert [p["function"] for p in between["program"]] == ["scene", "filter_action", "relate", "filter_action", "relate", "intersect", "query_action"]
    assert between["filter_answer_0"] == 0 and between["filter_answer_1"] == 2
    caption = qs["Describe the motion of the person."]["answer"]
    assert caption == "The person walks forward, then squats 7 times, and finally waves their right hand 3 times."
    # a concept occurring twice is never a filter
    twice = make_questions(segments[:2] + [dict(segments[0])])
    assert not any("they walk" in q["question"] for q in twice)


# ----------------------------------------------------------------------------------------------
# the suite on disk
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion_qa")
    summary = generate_suite(root, num_sequences=64, seed=0, render_videos=False)
    return root, summary


def test_suite_layout_and_loader(suite):
    root, summary = suite
    for name in ("questions.json", "split_question_ids.json", "motion_concepts.json", "metadata.json"):
        assert (root / name).is_file()
    meta = json.loads((root / "metadata.json").read_text())
    concepts = json.loads((root / "motion_concepts.json").read_text())
    assert summary["num_sequences"] == 64 and len(concepts) == 64
    assert set(summary["sequences_per_split"]) == {"train", "val", "test", "heldout"}
    actions_seen = {s["action"] for segs in concepts.values() for s in segs}
    assert len(actions_seen) >= 12 and actions_seen <= set(ACTION_NAMES)

    items = load_babel_qa(root)
    assert len(items) == summary["num_questions"]
    by_split = {s: load_babel_qa(root, s) for s in ("train", "val", "test", "heldout")}
    assert sum(map(len, by_split.values())) == len(items)
    ids = {s: {it.babel_id for it in v} for s, v in by_split.items()}
    assert not (ids["train"] & (ids["val"] | ids["test"] | ids["heldout"]))
    qtypes, relations = set(), set()
    for it in items:
        qtypes.add(it.query_type)
        relations.add(it.relation)
        assert os.path.isfile(it.motion_path) and it.pose_path and it.video_path is None and it.up_axis == "z"
        if it.query_type == "query_action":
            assert it.answer in ACTION_NAMES
        elif it.query_type == "query_body_part":
            assert it.answer in BABEL_QA_BODY_PARTS
        elif it.query_type == "query_direction":
            assert it.answer in BABEL_QA_DIRECTIONS
        elif it.query_type == "query_count":
            assert 1 <= int(it.answer) <= 12
        else:
            assert it.query_type == "query_description" and it.answer.startswith("The person ")
    assert qtypes == {"query_action", "query_direction", "query_body_part", "query_count", "query_description"}
    assert relations == {"no_relation", "before", "after", "in_between"}

    # held-out split: unseen pairs and unseen speeds never occur elsewhere, and every heldout sequence has one
    held_pairs = {tuple(p) for p in meta["heldout_pairs"]}
    lo, hi = HELDOUT_SPEED_RANGE
    for bid, segs in concepts.items():
        names = [s["action"] for s in segs]
        has_pair = bool(set(itertools.pairwise(names)) & held_pairs)
        has_speed = any(lo <= s["speed_factor"] <= hi for s in segs)
        assert (has_pair or has_speed) == (meta["sequences"][bid]["split"] == "heldout"), bid

    # the real BABEL-QA fields
    q = json.loads((root / "questions.json").read_text())
    first = next(iter(q.values()))
    assert {"question", "answer", "query_type", "relation_type", "babel_id", "program", "question_id"} <= set(first)


def test_question_focus_is_the_asked_and_the_named_segments(suite):
    """`question_focus_seconds`: a question about what comes after the squats is about the squats and the next
    segment; one with no relation (counting too) about its own segment; a description names none. With
    `asked_only`, the asked segment alone: the next one, the one in between, its own."""
    root, _ = suite
    questions = json.loads((root / "questions.json").read_text())
    concepts = json.loads((root / "motion_concepts.json").read_text())
    focus = mqa.question_focus_seconds(root)
    asked_only = mqa.question_focus_seconds(root, asked_only=True)  # the asked-span head's target
    assert set(asked_only) == set(focus)
    offsets = {"no_relation": [0], "before": [-1, 0], "after": [0, 1]}
    seen = set()
    for question_id, question in questions.items():
        if question["query_type"] == "query_description":
            assert question_id not in focus
            continue
        first = question["filter_answer_0"]
        named = sorted([first, question.get("filter_answer_1", first)])  # in between: named in either order
        chosen = (range(named[0], named[1] + 1) if question["relation_type"] == "in_between"
                  else [first + offset for offset in offsets[question["relation_type"]]])
        segments = concepts[question["babel_id"]]
        expected = [[segments[i]["start_f"] / 30.0, segments[i]["end_f"] / 30.0] for i in chosen]
        if question["relation_type"] == "in_between":  # the two named ones and the one between them
            assert len(expected) == 3
        assert focus[question_id] == expected, question_id
        asked = {"no_relation": first, "before": first - 1, "after": first + 1,
                 "in_between": (named[0] + named[1]) // 2}[question["relation_type"]]
        assert asked_only[question_id] == [[segments[asked]["start_f"] / 30.0, segments[asked]["end_f"] / 30.0]]
        seen.add((question["query_type"], question["relation_type"]))
    assert ("query_count", "no_relation") in seen and ("query_action", "after") in seen
    assert ("query_action", "in_between") in seen


def test_motion_files_match_the_sample(suite, tmp_path):
    root, _ = suite
    folder = root / "motion_sequences" / "000003"
    joints = np.load(folder / "joints.npy")
    assert joints.ndim == 3 and joints.shape[1:] == (22, 3) and joints.dtype == np.float32
    # BABEL-QA convention: Z-up, floor at 0, first pelvis at the origin, first right hip along +x
    np.testing.assert_allclose(joints[0, 0, :2], 0.0, atol=1e-5)
    assert abs(joints[..., 2].min() - mqa.FOOT_CLEARANCE) < 0.03
    hips = joints[0, 2] - joints[0, 1]
    assert hips[0] > 0 and abs(hips[1]) < 1e-4
    assert joints[:, 15, 2].mean() > joints[:, 0, 2].mean() + 0.3  # head above pelvis along z

    pose = load_motion(str(folder / "pose.npz"))
    assert pose.format == "amass" and pose.up_axis == "z" and pose.fps == 30.0 and pose.rotations.shape == (len(joints), 22, 3)
    # FK of pose.npz (Z-up) through its skeleton offsets, then the BABEL canonicalisation, gives joints.npy
    rot = axis_angle_to_matrix(pose.rotations)
    rot_y = rot.copy()
    rot_y[:, 0] = mqa.Y_TO_Z.T @ rot[:, 0]
    offsets = np.load(folder / "pose.npz")["skeleton_offsets"].astype(np.float64)
    fk, _ = forward_kinematics(rot_y, pose.translation @ mqa.Y_TO_Z, offsets)
    np.testing.assert_allclose(babel_joints(fk), joints, atol=2e-3)


def test_suite_is_deterministic_per_seed(suite, tmp_path):
    root, _ = suite
    other = tmp_path / "again"
    generate_suite(other, num_sequences=8, seed=0, render_videos=False)
    q_full = json.loads((root / "questions.json").read_text())
    q_small = json.loads((other / "questions.json").read_text())
    # sequences 0..7 are the same whether 8 or 64 are generated (same seed)
    small_ids = {q["babel_id"] for q in q_small.values()}
    full_subset = [q for q in q_full.values() if q["babel_id"] in small_ids]
    assert [(q["question"], q["answer"]) for q in q_small.values()] == [(q["question"], q["answer"]) for q in full_subset]
    for bid in sorted(small_ids):
        np.testing.assert_array_equal(np.load(other / "motion_sequences" / bid / "joints.npy"), np.load(root / "motion_sequences" / bid / "joints.npy"))
    third = tmp_path / "seed1"
    generate_suite(third, num_sequences=8, seed=1, render_videos=False)
    assert json.loads((third / "questions.json").read_text()) != q_small


# ----------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------


def _decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_render_is_deterministic_and_draws_a_figure():
    sample = generate_sequence(np.random.default_rng(0), SequenceSpec([SegmentSpec("jumping jacks", count=1)]))
    a = render_motion(sample.joints, size=96, seed=5)
    b = render_motion(sample.joints, size=96, seed=5)
    c = render_motion(sample.joints, size=96, seed=6)
    assert a.shape == (sample.num_frames, 96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    style = RenderStyle()
    cam = Camera(azimuth=0.0, elevation=10.0, distance=4.0)
    frames = render_motion(sample.joints, camera=cam, style=style, size=(128, 96))
    assert frames.shape[1:] == (96, 128, 3)
    # the figure's limbs are drawn in their colours, and they move (arms up at mid-clip)
    left = np.all(frames == np.array(style.left, np.uint8), axis=-1)
    assert left[0].sum() > 20 and left[len(frames) // 2].sum() > 20
    assert not np.array_equal(frames[0], frames[len(frames) // 2])


@pytest.mark.parametrize("ext", ["mp4", "webm", "gif"])
def test_rendered_video_decodes(tmp_path, ext):
    sample = generate_sequence(np.random.default_rng(1), SequenceSpec([SegmentSpec("squat", count=1, speed=1.5)]))
    frames = render_motion(sample.joints[:24], size=64, seed=0)
    path = write_video(frames, tmp_path / f"clip.{ext}", fps=30)
    if ext == "gif":
        with Image.open(path) as im:
            assert im.n_frames == 24 and im.size == (64, 64)
        return
    decoded = _decode(path)
    assert decoded.shape == (24, 64, 64, 3)
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 12  # lossy, but the same pictures


def test_suite_with_videos(tmp_path):
    summary = generate_suite(tmp_path, num_sequences=2, seed=3, render_videos=True, image_size=64)
    items = load_babel_qa(tmp_path)
    assert items and all(it.video_path and it.video_path.endswith(".mp4") for it in items)
    for bid in {it.babel_id for it in items}:
        video = _decode(tmp_path / "motion_sequences" / bid / "video.mp4")
        assert len(video) == len(np.load(tmp_path / "motion_sequences" / bid / "joints.npy"))
    assert summary["num_sequences"] == 2
