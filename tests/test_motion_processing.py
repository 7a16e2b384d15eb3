# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Tests of the motion half of the LLaMo processor (docs/SPEC.md section 2).

Real data: one HumanML3D motion (tests/fixtures/humanml3d, MIT; see tests/fixtures/SOURCES.md).
Body-model files are licensed and never committed: the fixtures below write synthetic ones with
the official array shapes into a temporary directory.
"""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processing_llamo.body_model import BodyModel, RestrictedUnpickler, create_smplx_model, load_body_model
from processing_llamo.motion_formats import MotionSequence, detect_format, humanml3d_to_joints, load_motion
from processing_llamo.motion_processing_llamo import REPRESENTATIONS, LlamoMotionProcessor, feature_dim
from processing_llamo.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    heading_angle,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_slerp,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    up_to_y_matrix,
    yaw_matrix,
)
from processing_llamo.skeleton import (
    SMPL_PARENTS,
    TEMPLATE_OFFSETS,
    bone_lengths,
    forward_kinematics,
    template_rest_joints,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "humanml3d")
# SMPL-H and SMPL-X kinematic trees beyond the 22 body joints: 15 finger joints per hand hang off
# the wrists (20 left, 21 right), three per finger; SMPL-X adds jaw and eyes on the head (15).
_HAND = [0, 1, 2] * 5
_SMPLH_PARENTS = list(SMPL_PARENTS) + [20 if k == 0 else 22 + 3 * (i // 3) + k - 1 for i, k in enumerate(_HAND)]
_SMPLH_PARENTS += [21 if k == 0 else 37 + 3 * (i // 3) + k - 1 for i, k in enumerate(_HAND)]
_SMPLX_PARENTS = list(SMPL_PARENTS) + [15, 15, 15]
_SMPLX_PARENTS += [20 if k == 0 else 25 + 3 * (i // 3) + k - 1 for i, k in enumerate(_HAND)]
_SMPLX_PARENTS += [21 if k == 0 else 40 + 3 * (i // 3) + k - 1 for i, k in enumerate(_HAND)]


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hml_features():
    return np.load(os.path.join(FIXTURES, "012314_vecs263.npy"))


@pytest.fixture(scope="module")
def hml_joints():
    return np.load(os.path.join(FIXTURES, "012314_joints22.npy"))


def _random_smpl(rng, frames=90, width=156, fps=30.0, scale=0.4):
    """AMASS-style dict with smooth random motion (sums of sines), Z-up.

    The root stands the body up (SMPL's body +y onto AMASS's world +z, as in real AMASS files),
    turns slowly about the up axis and wobbles by ``scale``; the joints wobble by ``scale``.
    """
    t = np.arange(frames)[:, None] / fps
    freq = rng.uniform(0.2, 1.5, (1, width))
    phase = rng.uniform(0, 2 * np.pi, (1, width))
    poses = scale * np.sin(2 * np.pi * freq * t + phase)
    stand_up = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
    turn = yaw_matrix(0.8 * np.sin(t[:, 0]), "z")
    poses[:, :3] = matrix_to_axis_angle(turn @ stand_up @ axis_angle_to_matrix(poses[:, :3]))
    trans = np.concatenate([np.sin(t) * 0.5, np.cos(0.7 * t), 0.9 + 0.05 * np.sin(3 * t)], axis=1)
    return {"poses": poses, "trans": trans, "mocap_framerate": np.array(fps), "betas": rng.normal(size=16)}


def _rotate_amass(motion, angle, offset):
    """The same motion turned by ``angle`` about the up axis (z) and shifted on the ground."""
    turn = yaw_matrix(np.array(angle), "z")
    poses = motion["poses"].copy()
    poses[:, :3] = matrix_to_axis_angle(turn @ axis_angle_to_matrix(poses[:, :3]))
    return {**motion, "poses": poses, "trans": motion["trans"] @ turn.T + np.array([offset[0], offset[1], 0.0])}


def _official_body_arrays(kind: str, rng) -> dict:
    """Synthetic SMPL-H/SMPL-X arrays with the official shapes (docs/STACK.md).

    Vertices 0..21 sit at the template skeleton's rest joints (shifted by a pelvis offset) and the
    regressor picks them, so the model's rest joints are known exactly.
    """
    vertices, joints, posedirs, faces = {"smplh": (6890, 52, 459, 13776), "smplx": (10475, 55, 486, 20908)}[kind]
    num_shape = 16 if kind == "smplh" else 20
    v_template = rng.normal(scale=0.3, size=(vertices, 3))
    v_template[:22] = template_rest_joints() + np.array([0.01, -0.3, 0.02])
    regressor = np.zeros((joints, vertices))
    regressor[np.arange(joints), np.arange(joints)] = 1.0
    weights = np.zeros((vertices, joints))
    weights[:, 0] = 1.0
    parents = np.array(_SMPLH_PARENTS if kind == "smplh" else _SMPLX_PARENTS, dtype=np.int64)
    parents[0] = -1
    arrays = {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.01, size=(vertices, 3, num_shape)),
        "posedirs": np.zeros((vertices, 3, posedirs)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.stack([parents, np.arange(joints)]),
        "f": rng.integers(0, vertices, size=(faces, 3)).astype(np.int64),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
    }
    if kind == "smplx":
        arrays.update(
            lmk_faces_idx=rng.integers(0, faces, size=51).astype(np.int64),
            lmk_bary_coords=np.full((51, 3), 1 / 3),
            dynamic_lmk_faces_idx=rng.integers(0, faces, size=(79, 17)).astype(np.int64),
            dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3),
        )
    return {key: value.astype(np.float32) if value.dtype == np.float64 else value for key, value in arrays.items()}


@pytest.fixture(scope="module")
def body_model_files(tmp_path_factory):
    """Synthetic SMPLH_NEUTRAL.npz and SMPLX_NEUTRAL.npz (official shapes), never committed."""
    directory = tmp_path_factory.mktemp("body_models")
    rng = np.random.default_rng(0)
    files = {}
    for kind in ("smplh", "smplx"):
        arrays = _official_body_arrays(kind, rng)
        path = directory / f"{kind.upper()}_NEUTRAL.npz"
        np.savez(path, **arrays)
        files[kind] = (str(path), arrays)
    return files


@pytest.fixture
def fake_chumpy_and_scipy(monkeypatch):
    """Stub ``chumpy.ch.Ch`` and ``scipy.sparse.csc.csc_matrix`` classes to *write* official-looking pickles."""

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()

    class csc_matrix:  # noqa: N801 - the real class name
        def __init__(self, dense):
            dense = np.asarray(dense)
            rows, cols = np.nonzero(dense.T)  # column-major order
            self.data, self.indices = dense.T[rows, cols], cols
            self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[1]))])
            self._shape = dense.shape
            self.maxprint = 50

    modules = {}
    for name, cls in (("chumpy.ch", Ch), ("scipy.sparse.csc", csc_matrix)):
        cls.__module__, cls.__qualname__ = name, cls.__name__
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            module_name = ".".join(parts[:depth])
            modules.setdefault(module_name, types.ModuleType(module_name))
        setattr(modules[name], cls.__name__, cls)
    for module_name, module in modules.items():
        monkeypatch.setitem(sys.modules, module_name, module)
    return Ch, csc_matrix


# ----------------------------------------------------------------------------------------------
# rotations
# ----------------------------------------------------------------------------------------------


def _random_axis_angle(rng, n):
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, np.pi - 1e-3, n - 4), [0.0, 1e-9, np.pi - 1e-7, 1e-4]])
    return axes * angles[:, None]


def test_rotation_round_trips():
    rng = np.random.default_rng(1)
    aa = _random_axis_angle(rng, 200)
    matrices = axis_angle_to_matrix(aa)
    np.testing.assert_allclose(
        matrices @ np.swapaxes(matrices, -1, -2), np.broadcast_to(np.eye(3), matrices.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(axis_angle_to_quaternion(aa)), matrices, atol=1e-12)
    np.testing.assert_allclose(matrix_to_axis_angle(matrices), aa, atol=1e-6)
    np.testing.assert_allclose(quaternion_to_axis_angle(matrix_to_quaternion(matrices)), aa, atol=1e-6)
    np.testing.assert_allclose(rotation_6d_to_matrix(matrix_to_rotation_6d(matrices)), matrices, atol=1e-12)
    # 6-D is the first two columns (Zhou et al.).
    np.testing.assert_array_equal(matrix_to_rotation_6d(matrices)[:, :3], matrices[:, :, 0])
    # dtype kept
    assert axis_angle_to_matrix(aa.astype(np.float32)).dtype == np.float32
    assert axis_angle_to_quaternion(aa.astype(np.float32)).dtype == np.float32


def test_slerp_and_yaw():
    rng = np.random.default_rng(2)
    aa = _random_axis_angle(rng, 50)
    q0, q1 = axis_angle_to_quaternion(aa), axis_angle_to_quaternion(aa[::-1])
    np.testing.assert_allclose(np.abs(np.sum(quaternion_slerp(q0, q1, np.zeros(50)) * q0, -1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(quaternion_slerp(q0, q1, np.ones(50)) * q1, -1)), 1.0, atol=1e-12)
    # Slerp about a fixed axis interpolates the angle linearly.
    axis = np.array([0.0, 0.0, 1.0])
    half = quaternion_slerp(axis_angle_to_quaternion(0.2 * axis), axis_angle_to_quaternion(1.0 * axis), np.array(0.25))
    np.testing.assert_allclose(quaternion_to_axis_angle(half), 0.4 * axis, atol=1e-12)
    for up, forward in (("y", [0.0, 0.0, 1.0]), ("z", [1.0, 0.0, 0.0]), ("x", [0.0, 1.0, 0.0])):
        angles = rng.uniform(-3, 3, 20)
        np.testing.assert_allclose(heading_angle(yaw_matrix(angles, up) @ np.array(forward), up), angles, atol=1e-12)
        conversion = up_to_y_matrix(up)
        np.testing.assert_allclose(conversion @ np.eye(3)["xyz".index(up)], [0.0, 1.0, 0.0])
        assert np.isclose(np.linalg.det(conversion), 1.0)


# ----------------------------------------------------------------------------------------------
# template skeleton and forward kinematics vs the real HumanML3D sample
# ----------------------------------------------------------------------------------------------

# HumanML3D's rest directions (its paramUtil ``t2m_raw_offsets``, a public table of facts: arms hang
# down, feet and head point forward) and kinematic chains. Its IK rotates each bone's raw direction
# onto the data; every chain starts again from the root rotation.
_T2M_DIRECTIONS = np.array(
    [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0],
     [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, -1, 0], [0, -1, 0],
     [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]], dtype=np.float64,
)  # fmt: skip
_T2M_CHAINS = [[0, 2, 5, 8, 11], [0, 1, 4, 7, 10], [0, 3, 6, 9, 12, 15], [9, 14, 17, 19, 21], [9, 13, 16, 18, 20]]


def test_template_bone_lengths_match_humanml3d(hml_joints):
    lengths = bone_lengths(hml_joints.astype(np.float64))
    assert lengths.std(axis=0).max() < 1e-5  # HumanML3D retargets onto one skeleton
    np.testing.assert_allclose(bone_lengths(template_rest_joints()), lengths.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(np.abs(bone_lengths(template_rest_joints()) - lengths).max(), 0.0, atol=1e-5)


def test_humanml3d_ric_recovery_matches_new_joints(hml_features, hml_joints):
    """HumanML3D's ``new_joints`` are ``recover_from_ric`` of the features: our re-implementation agrees."""
    np.testing.assert_allclose(humanml3d_to_joints(hml_features), hml_joints, atol=1e-5)


def test_humanml3d_rotations_through_template_lengths(hml_features, hml_joints):
    """FK of the 263-d vector's own 6-D rotations, in HumanML3D's per-bone convention, with the
    template's bone lengths along HumanML3D's rest directions, reproduces the joints (measured
    max error 1.6e-6 m). This checks the 6-D convention and the template lengths together."""
    frames = len(hml_features)
    half_angle = np.concatenate([[0.0], np.cumsum(hml_features[:-1, 0])])
    root_rotation = yaw_matrix(2.0 * half_angle)
    local = rotation_6d_to_matrix(hml_features[:, 67:193].reshape(frames, 21, 6).astype(np.float64))
    offsets = _T2M_DIRECTIONS * np.linalg.norm(TEMPLATE_OFFSETS, axis=-1, keepdims=True)
    joints = np.zeros((frames, 22, 3))
    joints[:, 0] = humanml3d_to_joints(hml_features)[:, 0]
    for chain in _T2M_CHAINS:
        rotation = root_rotation
        for parent, child in zip(chain[:-1], chain[1:], strict=True):
            rotation = rotation @ local[:, child - 1]
            joints[:, child] = joints[:, parent] + rotation @ offsets[child]
    assert np.abs(joints - hml_joints).max() < 1e-5


def _minimal_rotation(u, v):
    """Smallest rotations (N, 3, 3) turning unit vectors u (3,) onto unit vectors v (N, 3)."""
    axis = np.cross(u, v)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(sin, (v * u).sum(-1, keepdims=True))
    return axis_angle_to_matrix(axis / np.maximum(sin, 1e-12) * angle)


def _frame_from(x_vector, y_vector):
    x = x_vector / np.linalg.norm(x_vector, axis=-1, keepdims=True)
    y = y_vector - (x * y_vector).sum(-1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def test_template_fk_reproduces_humanml3d_joints(hml_joints):
    """The template *is* HumanML3D's skeleton in SMPL's convention: SMPL-convention rotations fitted
    to the sample (rigid girdle frames at pelvis and upper spine, shortest-arc rotations on the
    limbs) drive our FK to the file's joint positions exactly (to float32 precision)."""
    joints = hml_joints.astype(np.float64)
    global_rotations = np.broadcast_to(np.eye(3), (len(joints), 22, 3, 3)).copy()
    global_rotations[:, 0] = _frame_from(joints[:, 1] - joints[:, 2], joints[:, 3] - joints[:, 0])
    global_rotations[:, 9] = _frame_from(joints[:, 13] - joints[:, 14], joints[:, 12] - joints[:, 9])
    for parent, child in ((1, 4), (2, 5), (3, 6), (4, 7), (5, 8), (6, 9), (7, 10), (8, 11), (12, 15),
                          (13, 16), (14, 17), (16, 18), (17, 19), (18, 20), (19, 21)):  # fmt: skip
        bone = joints[:, child] - joints[:, parent]
        rest = TEMPLATE_OFFSETS[child] / np.linalg.norm(TEMPLATE_OFFSETS[child])
        global_rotations[:, parent] = _minimal_rotation(rest, bone / np.linalg.norm(bone, axis=-1, keepdims=True))
    local = global_rotations.copy()
    local[:, 1:] = np.swapaxes(global_rotations[:, SMPL_PARENTS[1:]], -1, -2) @ global_rotations[:, 1:]
    reproduced, recomposed = forward_kinematics(local, joints[:, 0])
    np.testing.assert_allclose(recomposed, global_rotations, atol=1e-9)
    assert np.abs(reproduced - joints).max() < 1e-5


def test_fk_rest_pose_and_rigid_motion():
    rng = np.random.default_rng(3)
    identity = np.broadcast_to(np.eye(3), (2, 22, 3, 3))
    joints, _ = forward_kinematics(identity, np.zeros((2, 3)))
    np.testing.assert_allclose(joints[0], template_rest_joints())
    local = axis_angle_to_matrix(rng.normal(scale=0.5, size=(5, 22, 3)))
    base, _ = forward_kinematics(local, np.zeros((5, 3)))
    turned = local.copy()
    turn = axis_angle_to_matrix(np.array([0.3, -1.0, 0.2]))
    turned[:, 0] = turn @ local[:, 0]
    moved, _ = forward_kinematics(turned, np.full((5, 3), 2.0))
    np.testing.assert_allclose(moved, base @ turn.T + 2.0, atol=1e-12)
    np.testing.assert_allclose(bone_lengths(moved), np.broadcast_to(bone_lengths(template_rest_joints()), (5, 21)))


# ----------------------------------------------------------------------------------------------
# formats
# ----------------------------------------------------------------------------------------------


def test_format_detection_and_fields(tmp_path, hml_features, hml_joints):
    rng = np.random.default_rng(4)
    amass = _random_smpl(rng, frames=12, width=165)
    sequence = load_motion(amass)
    assert (sequence.format, sequence.up_axis, sequence.fps, sequence.rotations.shape) == (
        "amass",
        "z",
        30.0,
        (12, 22, 3),
    )
    np.testing.assert_array_equal(sequence.rotations.reshape(12, -1), amass["poses"][:, :66])
    assert sequence.betas.shape == (16,) and sequence.joints is None

    path = tmp_path / "clip.npz"
    np.savez(path, poses=amass["poses"][:, :72], trans=amass["trans"], mocap_frame_rate=60, gender="female")
    sequence = load_motion(str(path))
    assert (sequence.format, sequence.fps, sequence.gender, sequence.source) == ("amass", 60.0, "female", str(path))

    processed = {"root_orient": amass["poses"][:, :3], "pose_body": amass["poses"][:, 3:66], "trans": amass["trans"]}
    assert load_motion(processed, fps=30).format == "amass_processed"
    smplx_style = {"global_orient": torch.tensor(amass["poses"][:, :3]), "body_pose": amass["poses"][:, 3:72]}
    sequence = load_motion(smplx_style, fps=30)
    assert (sequence.format, sequence.up_axis, sequence.translation) == ("smplx", "y", None)
    assert load_motion(smplx_style, fps=30, up_axis="z").up_axis == "z"

    np.save(tmp_path / "joints.npy", hml_joints)
    sequence = load_motion(str(tmp_path / "joints.npy"), fps=20)
    assert (sequence.format, sequence.joints.shape) == ("joints", (170, 22, 3))
    sequence = load_motion(torch.from_numpy(hml_features))
    assert (sequence.format, sequence.fps) == ("humanml3d", 20.0)
    assert detect_format(np.zeros((5, 66))) is None
    # explicit override
    assert load_motion({"joints": hml_joints}, fps=20, format="joints").format == "joints"


def _amass(frames=10, width=156, **overrides):
    data = {"poses": np.zeros((frames, width)), "trans": np.zeros((frames, 3)), "mocap_framerate": np.array(30.0)}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.parametrize(
    ("motion", "kwargs", "message"),
    [
        (_amass(width=100), {}, "poses"),
        (_amass(trans=None), {}, "missing key 'trans'"),
        (_amass(frames=0), {}, "empty"),
        (_amass(mocap_framerate=np.array(0.0)), {}, "fps"),
        (_amass(), {"fps": -5}, "fps"),
        (_amass(mocap_framerate=None), {}, "no frame rate"),
        (_amass(trans=np.zeros((9, 3))), {}, "frame counts disagree"),
        (_amass(poses=np.full((10, 156), np.nan)), {}, "NaN"),
        ({"joints": np.full((4, 22, 3), np.inf)}, {"fps": 30}, "NaN or Inf"),
        (np.zeros((4, 21, 3)), {"fps": 30}, "unknown motion format"),
        ({"foo": np.zeros(3)}, {}, "unknown motion format"),
        (np.zeros((4, 22, 3)), {"fps": 30, "format": "bvh"}, "unknown motion format 'bvh'"),
        (np.zeros((4, 22, 3)), {"fps": 30, "format": "amass"}, "needs a dict"),
        (np.zeros((4, 22, 3)), {}, "no frame rate"),
        ({"global_orient": np.zeros((4, 3)), "body_pose": np.zeros((4, 60))}, {"fps": 30}, "body_pose"),
        (np.zeros((4, 263)), {"up_axis": "w"}, "up_axis"),
    ],
)
def test_bad_inputs_raise_value_errors(motion, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_motion(motion, source="bad.npz", **kwargs)


def test_pickled_files_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, poses=np.array([np.zeros((3, 156))], dtype=object), trans=np.zeros((3, 3)), mocap_framerate=30)
    with pytest.raises(ValueError, match=r"pickled\.npz: entry 'poses' is a pickled object array"):
        load_motion(str(path))
    np.save(tmp_path / "pickled.npy", np.array([{"joints": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        load_motion(str(tmp_path / "pickled.npy"), fps=30)
    (tmp_path / "clip.bvh").write_text("HIERARCHY")
    with pytest.raises(ValueError, match=r"clip\.bvh: unsupported"):
        load_motion(str(tmp_path / "clip.bvh"))


# ----------------------------------------------------------------------------------------------
# the processor
# ----------------------------------------------------------------------------------------------


def test_feature_dims():
    assert {name: feature_dim(name) for name in REPRESENTATIONS} == {
        "smpl22_rot6d_joints": 202, "smpl22_rot6d": 136, "joints22": 70, "humanml3d_263": 263,
    }  # fmt: skip
    with pytest.raises(ValueError, match="Unknown motion representation"):
        feature_dim("smpl24")


def test_batch_outputs_padding_and_timestamps():
    rng = np.random.default_rng(5)
    processor = LlamoMotionProcessor()
    long_clip, short_clip = _random_smpl(rng, frames=120, fps=60.0), _random_smpl(rng, frames=31, fps=30.0)
    out = processor([long_clip, short_clip])
    assert set(out) == {"motion_values", "motion_mask", "motion_timestamps"}
    assert out["motion_values"].shape == (2, 60, 202) and out["motion_values"].dtype == torch.float32
    assert out["motion_mask"].dtype == torch.int64 and out["motion_timestamps"].dtype == torch.float32
    assert out["motion_mask"].sum(1).tolist() == [60, 31]  # 119/60 s at 30 fps -> 60 frames
    assert torch.all(out["motion_values"][1, 31:] == 0) and torch.all(out["motion_mask"][1, 31:] == 0)
    np.testing.assert_allclose(out["motion_timestamps"][0, :3].numpy(), [0, 1 / 30, 2 / 30], atol=1e-7)

    # Video timestamps: motion sampled exactly there, past-the-end clamps to the last frame.
    stamps = [np.array([0.0, 0.25, 5.0, 10.0]), None]
    out = processor([long_clip, short_clip], timestamps=stamps, return_tensors="np")
    assert isinstance(out["motion_values"], np.ndarray) and out["motion_mask"].sum(1).tolist() == [4, 31]
    np.testing.assert_allclose(out["motion_timestamps"][0, :4], stamps[0])
    at_end, _ = processor.extract_features(long_clip, timestamps=[119 / 60])
    np.testing.assert_allclose(out["motion_values"][0, 3, 4:], at_end[0, 4:], atol=1e-5)
    assert np.all(out["motion_values"][0, 3, 1:4] == 0)  # clamped: no motion, no velocity

    # max_motion_frames: uniform subsampling over the whole clip.
    processor = LlamoMotionProcessor(max_motion_frames=16)
    out = processor(long_clip, return_tensors="np")
    assert out["motion_values"].shape == (1, 16, 202)
    np.testing.assert_allclose(out["motion_timestamps"][0, [0, -1]], [0.0, 59 / 30], atol=1e-6)
    with pytest.raises(ValueError, match="one entry per clip"):
        processor([long_clip, short_clip], timestamps=[None])
    with pytest.raises(ValueError, match="non-decreasing"):
        processor([long_clip], timestamps=[[0.5, 0.1]])


@pytest.mark.parametrize("representation", ["smpl22_rot6d_joints", "smpl22_rot6d", "joints22"])
def test_resampling_matches_direct_sampling(representation):
    """120 fps -> 30 fps equals giving every 4th frame as a 30 fps motion (features use fps)."""
    rng = np.random.default_rng(6)
    motion = _random_smpl(rng, frames=241, fps=120.0)
    direct = {"poses": motion["poses"][::4], "trans": motion["trans"][::4], "mocap_framerate": np.array(30.0)}
    processor = LlamoMotionProcessor(representation=representation)
    resampled, times = processor.extract_features(motion)
    expected, expected_times = processor.extract_features(direct)
    np.testing.assert_allclose(times, expected_times)
    np.testing.assert_allclose(resampled, expected, atol=1e-9)


def test_velocities_do_not_depend_on_sampling_rate():
    """Velocities are per second: a body gliding at a constant ground velocity while spinning at a
    constant yaw rate gets the same root block at 30 and at 60 fps (backward differences are exact
    for motion linear in time), with the physical values."""
    rng = np.random.default_rng(7)
    motion = _random_smpl(rng, frames=241, fps=120.0, scale=0.1)
    t = np.arange(241) / 120.0
    stand_up = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))
    motion["poses"][:, :3] = matrix_to_axis_angle(yaw_matrix(0.7 * t, "z") @ stand_up)
    motion["trans"] = np.stack([1.2 * t, 0.3 * t, np.full_like(t, 0.9)], axis=1)
    slow = LlamoMotionProcessor(motion_fps=30).extract_features(motion)[0][:, :4]
    fast = LlamoMotionProcessor(motion_fps=60).extract_features(motion)[0][::2, :4]
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    np.testing.assert_allclose(slow[:, 3], 0.7, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(slow[:, 1:3], axis=1), np.hypot(1.2, 0.3), atol=1e-9)


@given(angle=st.floats(-np.pi, np.pi), dx=st.floats(-50, 50), dy=st.floats(-50, 50))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_canonical_features_invariant_to_ground_motion(hml_joints, angle, dx, dy):
    """Turning the input about the up axis and moving it on the ground changes no feature."""
    rng = np.random.default_rng(8)
    motion = _random_smpl(rng, frames=40)
    moved = _rotate_amass(motion, angle, (dx, dy))
    for representation in ("smpl22_rot6d_joints", "joints22"):
        processor = LlamoMotionProcessor(representation=representation)
        np.testing.assert_allclose(
            processor.extract_features(moved)[0], processor.extract_features(motion)[0], atol=1e-5
        )
    # Y-up joints (HumanML3D sample), turned about y.
    turn = yaw_matrix(np.array(angle), "y")
    joints_processor = LlamoMotionProcessor(representation="joints22")
    original = joints_processor.extract_features(hml_joints, fps=20)[0]
    turned = joints_processor.extract_features(hml_joints @ turn.T + np.array([dx, 0.0, dy]), fps=20)[0]
    np.testing.assert_allclose(turned, original, atol=1e-5)


def test_canonical_frame_and_up_axis():
    """The first frame starts at the ground origin facing +z, whatever the input's up axis."""
    rng = np.random.default_rng(9)
    motion = _random_smpl(rng, frames=30)
    processor = LlamoMotionProcessor()
    z_up = processor.extract_features(motion)[0]
    # The same motion stored Y-up through smplx names gives the same features.
    to_y = up_to_y_matrix("z")
    y_up = {
        "global_orient": matrix_to_axis_angle(to_y @ axis_angle_to_matrix(motion["poses"][:, :3])),
        "body_pose": motion["poses"][:, 3:66],
        "transl": motion["trans"] @ to_y.T,
    }
    np.testing.assert_allclose(processor.extract_features(y_up, fps=30)[0], z_up, atol=1e-9)
    # Root height is the source's up coordinate; the heading-free root 6-D has no yaw.
    np.testing.assert_allclose(z_up[:, 0], motion["trans"][:, 2], atol=1e-9)
    root = rotation_6d_to_matrix(z_up[:, 4:10])
    np.testing.assert_allclose(heading_angle(root[:, :, 2]), 0.0, atol=1e-9)


def test_joints22_is_consistent_across_sources(hml_features, hml_joints):
    processor = LlamoMotionProcessor(representation="joints22")
    from_features = processor.extract_features(hml_features)[0]
    from_joints = processor.extract_features(hml_joints, fps=20)[0]
    np.testing.assert_allclose(from_features, from_joints, atol=1e-4)
    # SMPL rotations -> template FK -> joints22 equals joints22 of the FK joints themselves.
    rng = np.random.default_rng(10)
    motion = _random_smpl(rng, frames=30)
    smpl = processor.extract_features(motion)[0]
    local = axis_angle_to_matrix(motion["poses"][:, :66].reshape(30, 22, 3))
    local[:, 0] = up_to_y_matrix("z") @ local[:, 0]
    joints, _ = forward_kinematics(local, motion["trans"] @ up_to_y_matrix("z").T)
    np.testing.assert_allclose(smpl, processor.extract_features(joints, fps=30)[0], atol=1e-9)
    # The default representation's joint block holds the same joints; it is expressed in the root
    # orientation's heading frame instead of the hips/shoulders one, a turn about the up axis that
    # keeps heights and horizontal distances.
    default = LlamoMotionProcessor().extract_features(motion)[0][:, 136:].reshape(30, 22, 3)
    from_joints = smpl[:, 4:].reshape(30, 22, 3)
    np.testing.assert_allclose(default[..., 1], from_joints[..., 1], atol=1e-9)
    np.testing.assert_allclose(
        np.hypot(default[..., 0], default[..., 2]), np.hypot(from_joints[..., 0], from_joints[..., 2]), atol=1e-9
    )


def test_humanml3d_passthrough_with_statistics(hml_features):
    mean, std = np.load(os.path.join(FIXTURES, "Mean.npy")), np.load(os.path.join(FIXTURES, "Std.npy"))
    processor = LlamoMotionProcessor(
        representation="humanml3d_263", motion_fps=20, max_motion_frames=1000, mean=mean, std=std
    )
    out = processor([hml_features], return_tensors="np")
    np.testing.assert_allclose(out["motion_values"][0], (hml_features - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(processor.denormalize(out["motion_values"][0]), hml_features, atol=1e-4)


@pytest.mark.parametrize(
    ("representation", "motion", "message"),
    [
        ("smpl22_rot6d_joints", "joints", "needs SMPL joint rotations"),
        ("smpl22_rot6d", "humanml3d", "per-bone IK"),
        ("humanml3d_263", "amass", "needs HumanML3D 263-d features"),
        ("humanml3d_263", "joints", "joints22"),
    ],
)
def test_impossible_conversions_name_the_missing_piece(representation, motion, message, hml_features, hml_joints):
    sources = {"joints": (hml_joints, 20), "humanml3d": (hml_features, None), "amass": (_amass(), None)}
    data, fps = sources[motion]
    with pytest.raises(ValueError, match=message):
        LlamoMotionProcessor(representation=representation)([data], fps=fps)


def test_save_load_round_trip_and_statistics(tmp_path):
    rng = np.random.default_rng(11)
    motions = [_random_smpl(rng, frames=45) for _ in range(3)]
    processor = LlamoMotionProcessor(representation="smpl22_rot6d", max_motion_frames=64)
    mean, std = processor.compute_statistics(motions, show_progress=False)
    assert mean.shape == std.shape == (136,) and std.min() >= 1e-4
    stacked = np.concatenate([processor.extract_features(m)[0] for m in motions])
    np.testing.assert_allclose(mean, stacked.mean(0), atol=1e-10)
    np.testing.assert_allclose(std, np.maximum(stacked.std(0), 1e-4), atol=1e-10)
    normalised = processor(motions, return_tensors="np")["motion_values"].reshape(-1, 136)
    np.testing.assert_allclose(normalised.mean(0), 0.0, atol=1e-4)

    processor.save_pretrained(tmp_path)
    reloaded = LlamoMotionProcessor.from_pretrained(tmp_path)
    assert reloaded.to_dict() == processor.to_dict()
    np.testing.assert_array_equal(
        reloaded(motions, return_tensors="np")["motion_values"],
        processor(motions, return_tensors="np")["motion_values"],
    )
    with pytest.raises(ValueError, match="mean must hold 136"):
        LlamoMotionProcessor(representation="smpl22_rot6d", mean=[0.0] * 10)


_FORMAT_SHAPES = {
    "amass": lambda t, w: {"poses": (t, w), "trans": (t, 3), "mocap_framerate": ()},
    "smplx": lambda t, w: {"global_orient": (t, 3), "body_pose": (t, w), "transl": (t, 3)},
    "joints": lambda t, w: (t, 22, 3) if w % 2 else (t, w % 30, 3),
    "humanml3d": lambda t, w: (t, 263 if w % 2 else w),
}


@given(
    kind=st.sampled_from(sorted(_FORMAT_SHAPES)),
    frames=st.one_of(st.just(0), st.integers(1, 40)),
    width=st.sampled_from([63, 69, 72, 156, 165, 3, 64]),
    fps=st.one_of(st.none(), st.floats(0.5, 240.0), st.sampled_from([0.0, -30.0, np.nan, np.inf, 1e-30, 1e30])),
    scale=st.sampled_from([0.0, 1e-3, 1.0, 1e3, 1e200]),
    poison=st.sampled_from([None, None, None, np.nan, np.inf]),
    representation=st.sampled_from(sorted(REPRESENTATIONS)),
    stamps=st.one_of(st.none(), st.lists(st.floats(-5, 50), min_size=1, max_size=6).map(sorted)),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=80, deadline=None)
def test_fuzz_motion_path(kind, frames, width, fps, scale, poison, representation, stamps, seed):
    """Random shapes, values, rates: only ValueErrors, otherwise finite output of the right shape."""
    rng = np.random.default_rng(seed)
    layout = _FORMAT_SHAPES[kind](frames, width)

    def fill(shape):
        values = rng.normal(size=shape) * scale
        if poison is not None and values.size:
            values.flat[rng.integers(values.size)] = poison
        return values

    motion = {key: fill(shape) for key, shape in layout.items()} if isinstance(layout, dict) else fill(layout)
    processor = LlamoMotionProcessor(representation=representation, max_motion_frames=32)
    try:
        out = processor([motion], timestamps=[stamps], fps=fps, return_tensors="np")
    except ValueError:
        return
    values = out["motion_values"]
    assert values.shape[0] == 1 and values.shape[2] == feature_dim(representation)
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(out["motion_timestamps"]))
    assert out["motion_mask"].sum() == values.shape[1] == (len(stamps) if stamps else values.shape[1])


_VALID_SHAPES = {
    "amass": lambda t: {"poses": (t, 156), "trans": (t, 3)},
    "smplx": lambda t: {"global_orient": (t, 3), "body_pose": (t, 63), "transl": (t, 3)},
    "joints": lambda t: (t, 22, 3),
    "humanml3d": lambda t: (t, 263),
}
_CONVERTIBLE = {
    "amass": ("smpl22_rot6d_joints", "smpl22_rot6d", "joints22"),
    "smplx": ("smpl22_rot6d_joints", "smpl22_rot6d", "joints22"),
    "joints": ("joints22",),
    "humanml3d": ("joints22", "humanml3d_263"),
}


@given(
    kind=st.sampled_from(sorted(_VALID_SHAPES)),
    frames=st.integers(1, 60),
    fps=st.floats(0.1, 1000.0),
    scale=st.floats(0.0, 100.0),
    representation=st.sampled_from(sorted(REPRESENTATIONS)),
    stamps=st.one_of(st.none(), st.lists(st.floats(-5, 50), min_size=1, max_size=8).map(sorted)),
    max_frames=st.integers(1, 64),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_fuzz_well_formed_motions(kind, frames, fps, scale, representation, stamps, max_frames, seed):
    """Well-formed random motions always process when the conversion exists, to finite output."""
    rng = np.random.default_rng(seed)
    layout = _VALID_SHAPES[kind](frames)
    fill = lambda shape: rng.normal(size=shape) * scale  # noqa: E731
    motion = {key: fill(shape) for key, shape in layout.items()} if isinstance(layout, dict) else fill(layout)
    processor = LlamoMotionProcessor(representation=representation, max_motion_frames=max_frames)
    if representation not in _CONVERTIBLE[kind]:
        with pytest.raises(ValueError, match="representation"):
            processor([motion], timestamps=[stamps], fps=fps)
        return
    out = processor([motion], timestamps=[stamps], fps=fps, return_tensors="np")
    expected_frames = len(stamps) if stamps else min(max_frames, int(np.floor((frames - 1) / fps * 30 + 1e-6)) + 1)
    assert out["motion_values"].shape == (1, expected_frames, feature_dim(representation))
    assert np.all(np.isfinite(out["motion_values"]))


# ----------------------------------------------------------------------------------------------
# body models
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["smplh", "smplx"])
def test_body_model_npz_rest_joints(body_model_files, kind):
    path, arrays = body_model_files[kind]
    model = load_body_model(path)
    assert model.model_type == kind
    betas = np.linspace(-1, 1, 16)
    shape_dims = 16 if kind == "smplh" else 10  # SMPL-X v1.0 layout: 10 shape + 10 expression
    used = betas[:shape_dims]
    expected = arrays["J_regressor"][:22].astype(np.float64) @ (
        arrays["v_template"].astype(np.float64) + arrays["shapedirs"][..., :shape_dims].astype(np.float64) @ used
    )
    np.testing.assert_allclose(model.rest_joints(betas), expected, atol=1e-6)
    np.testing.assert_allclose(model.offsets()[1:], TEMPLATE_OFFSETS[1:], atol=1e-6)


@pytest.mark.parametrize("kind", ["smplh", "smplx"])
def test_body_model_pickle_with_chumpy_through_restricted_unpickler(
    tmp_path, body_model_files, fake_chumpy_and_scipy, kind
):
    Ch, csc_matrix = fake_chumpy_and_scipy
    _, arrays = body_model_files[kind]
    official = dict(arrays)
    official.update(
        v_template=Ch(arrays["v_template"]),
        shapedirs=Ch(arrays["shapedirs"]),
        J_regressor=csc_matrix(arrays["J_regressor"]),
        bs_style="lbs",
    )
    path = tmp_path / f"{kind.upper()}_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(official, protocol=2))
    np.testing.assert_allclose(
        load_body_model(str(path)).rest_joints(), load_body_model(arrays).rest_joints(), atol=1e-6
    )


def test_restricted_unpickler_refuses_other_globals(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Exploit()}, protocol=2))
    with pytest.raises(ValueError, match=r"evil\.pkl: refusing to unpickle global '(posix|nt|os)\.system'"):
        load_body_model(str(path))
    import io

    with pytest.raises(ValueError, match="builtins.eval"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(eval))).load()
    with pytest.raises(ValueError, match="missing"):
        load_body_model({"v_template": np.zeros((3, 3))})


def test_body_model_drives_forward_kinematics(body_model_files):
    """With a body model the pelvis is trans + J_0(betas); with the template's geometry the
    features equal the template's once that pelvis offset is removed from trans."""
    path, _ = body_model_files["smplh"]
    model = load_body_model(path)
    rng = np.random.default_rng(12)
    motion = _random_smpl(rng, frames=20)
    motion.pop("betas")
    processor = LlamoMotionProcessor()
    with_model = processor.extract_features(motion, body_model=model)[0]
    pelvis = model.rest_joints()[0]
    shifted = {**motion, "trans": motion["trans"] + pelvis}
    np.testing.assert_allclose(with_model, processor.extract_features(shifted)[0], atol=1e-6)
    out = processor([motion], body_model=path, return_tensors="np")
    np.testing.assert_allclose(out["motion_values"][0], with_model, atol=1e-5)


@pytest.mark.parametrize("kind", ["smplh", "smplx"])
def test_smplx_agrees_when_installed(body_model_files, kind):
    smplx = pytest.importorskip("smplx")
    path, _ = body_model_files[kind]
    extra = {"use_pca": False, "num_betas": 10}  # smplx caps non-full shape spaces at 10 betas
    model = create_smplx_model(path, **extra)
    assert isinstance(model, smplx.SMPLH if kind == "smplh" else smplx.SMPLX)
    betas = torch.linspace(-1, 1, extra["num_betas"])[None]
    with torch.no_grad():
        joints = model(betas=betas).joints[0, :22].double().numpy()
    ours = load_body_model(path).rest_joints(betas[0].numpy())
    np.testing.assert_allclose(ours, joints, atol=1e-5)
    # An smplx object is accepted as a body model directly.
    np.testing.assert_allclose(load_body_model(model).rest_joints(betas[0].numpy()), joints, atol=1e-5)
    assert isinstance(load_body_model(model), BodyModel)


def test_motion_sequence_passthrough():
    sequence = MotionSequence(fps=10.0, up_axis="y", format="joints", joints=np.zeros((3, 22, 3)))
    assert load_motion(sequence, fps=20).fps == 20.0 and sequence.duration == 0.2
