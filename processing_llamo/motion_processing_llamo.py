# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Motion feature extractor of LLaMo: any supported motion -> canonical per-frame features.

This is the processor side of E2 (docs/SPEC.md section 1): LLaMo keeps motion continuous, one
feature vector per frame, on the same timeline as the sampled video frames (SPEC section 2,
"Timeline"), invariant to where the person stands and which way they face at the start (SPEC
section 2, "Canonical motion features").

Pipeline per clip
-----------------
1. **Load** (:func:`.motion_formats.load_motion`): AMASS / processed AMASS / smplx arrays / joints /
   HumanML3D 263, from paths, arrays, tensors or dicts.
2. **Timeline.** With ``timestamps`` (seconds of the sampled video frames) the motion is sampled at
   exactly those times (before 0 -> first frame, past the end -> last frame), so video and motion
   share T. Without, it is sampled at ``motion_fps`` from t=0 and, past ``max_motion_frames``,
   uniformly subsampled (``motion_timestamps`` keeps the real times). Rotations are interpolated by
   quaternion slerp, positions and features linearly; sampling at a source frame's own time returns
   that frame, so 120 fps -> 30 fps equals taking every 4th frame.
3. **Y-up and canonicalisation.** Positions and the root orientation are turned to Y-up
   (:func:`.rotations.up_to_y_matrix`), then the first frame's ground-plane position and heading
   are removed: the clip starts at the origin facing +z. (The features below are per-frame
   relative quantities, so they are invariant to any yaw/ground translation of the input anyway;
   the canonical frame makes the intermediate joints reproducible and viewable.)
4. **Features** in the layout of the chosen ``representation`` (below), then normalised with
   ``(x - mean) / std`` when statistics are set (:meth:`LlamoMotionProcessor.compute_statistics`).

Heading and root features
-------------------------
The *heading* of a frame is the yaw of the body's forward direction on the ground plane: the root
orientation's body ``+z`` axis for SMPL rotations, and for joint positions the horizontal
perpendicular to the hips + shoulders left-right vector (HumanML3D's choice). The root block
(4 values) of every representation except ``humanml3d_263`` is::

    [0]    root (pelvis) height above the ground plane y=0 of the source (metres)
    [1:3]  root ground-plane velocity (x, z) in the *current* frame's heading frame (m/s)
    [3]    root yaw velocity, wrapped to [-pi, pi) per step (rad/s)

Velocities are backward frame differences divided by the actual time step (``frame difference *
fps`` on a uniform grid), so they do not depend on the sampling rate. The first frame copies the
second's velocity (zero for a one-frame clip); a zero time step (repeated or clamped timestamps)
gives zero velocity.

Representations (``feature_dim``)
---------------------------------
``"smpl22_rot6d_joints"`` (202, default), from SMPL-family rotations::

    [0:4]     root block
    [4:10]    root orientation with the heading removed, 6-D (first two matrix columns)
    [10:136]  local rotations of body joints 1..21 (SMPL order), 6-D each
    [136:202] 22 joint positions minus the root's ground projection (root_x, 0, root_z), rotated
              into the current heading frame, (x, y, z) per joint; joints by forward kinematics
              through the user's body model (``body_model=``) or the built-in template skeleton

``"smpl22_rot6d"`` (136): the first 136 values above (no forward kinematics needed).

``"joints22"`` (70): ``[0:4]`` root block, ``[4:70]`` the 22 joint positions as in [136:202] above;
from joint positions, HumanML3D 263 (positions recovered from its RIC part) or SMPL rotations
(through forward kinematics). Heading from the hips/shoulders.

``"humanml3d_263"`` (263): HumanML3D features passed through (resampled linearly when the rates
differ; their velocity channels keep HumanML3D's per-20-fps-frame units, so set ``motion_fps=20``
for HumanML3D checkpoints). Only from HumanML3D input.

What cannot be converted raises a ``ValueError`` naming the missing piece: joint positions carry no
joint rotations (use ``"joints22"``); the 263-d 6-D rotations follow HumanML3D's per-bone IK
convention, not SMPL's local rotations (use ``"joints22"`` or ``"humanml3d_263"``); HumanML3D
features cannot be built from other formats here (use ``"joints22"`` or a rotation representation).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from .body_model import BodyModel, load_body_model
from .motion_formats import MotionSequence, humanml3d_to_joints, load_motion
from .rotations import (
    AXES,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    heading_angle,
    matrix_to_rotation_6d,
    quaternion_slerp,
    quaternion_to_matrix,
    up_to_y_matrix,
    wrap_angle,
    yaw_matrix,
)
from .skeleton import NUM_JOINTS, TEMPLATE_OFFSETS, forward_kinematics

__all__ = [
    "REPRESENTATIONS",
    "LlamoMotionProcessor",
    "feature_dim",
    "joints_features",
    "joints_heading",
    "rotation_features",
]

_ROOT_DIM = 4
_ROT6D_DIM = 6 + 6 * (NUM_JOINTS - 1)
_JOINTS_DIM = 3 * NUM_JOINTS
REPRESENTATIONS = {
    "smpl22_rot6d_joints": _ROOT_DIM + _ROT6D_DIM + _JOINTS_DIM,
    "smpl22_rot6d": _ROOT_DIM + _ROT6D_DIM,
    "joints22": _ROOT_DIM + _JOINTS_DIM,
    "humanml3d_263": 263,
}
# Joints defining the left-right direction of a body from positions (SMPL order).
_LEFT_HIP, _RIGHT_HIP, _LEFT_SHOULDER, _RIGHT_SHOULDER = 1, 2, 16, 17
# Times within this many source frames of a frame are snapped onto it, so that sampling at a
# frame's own time returns the frame exactly despite floating-point rounding of t * fps.
_SNAP_FRAMES = 1e-6


def feature_dim(representation: str) -> int:
    """Number of features per frame of a motion representation."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"Unknown motion representation {representation!r}; expected one of {list(REPRESENTATIONS)}.")
    return REPRESENTATIONS[representation]


# ----------------------------------------------------------------------------------------------
# timeline
# ----------------------------------------------------------------------------------------------


def _uniform_times(duration: float, rate: float, max_frames: int) -> np.ndarray:
    """Times at ``rate`` covering ``[0, duration]``, uniformly subsampled to ``max_frames``.

    The subsampled grid is computed directly (never the full grid), so an absurd duration, e.g.
    from a tiny ``fps``, costs nothing.
    """
    count = np.floor(duration * rate + _SNAP_FRAMES) + 1.0
    if count <= max_frames:
        return np.arange(int(count)) / rate
    return np.round(np.linspace(0.0, count - 1.0, max_frames)) / rate


def _check_timestamps(timestamps, source: str) -> np.ndarray:
    times = np.asarray(_tensor_to_numpy(timestamps), dtype=np.float64)
    if times.ndim != 1 or len(times) == 0:
        raise ValueError(f"{source}: timestamps must be a non-empty 1-D array of seconds, got shape {times.shape}.")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{source}: timestamps contain NaN or Inf.")
    if np.any(np.diff(times) < 0):
        raise ValueError(f"{source}: timestamps must be non-decreasing.")
    return times


def _sample_positions(times: np.ndarray, fps: float, num_frames: int):
    """Bracketing source frames ``(i0, i1)`` and weight ``w`` of ``i1`` for each time."""
    position = np.clip(times * fps, 0.0, num_frames - 1)
    nearest = np.round(position)
    position = np.where(np.abs(position - nearest) < _SNAP_FRAMES, nearest, position)
    i0 = np.minimum(np.floor(position).astype(np.int64), num_frames - 1)
    i1 = np.minimum(i0 + 1, num_frames - 1)
    return i0, i1, position - i0


def _lerp(values: np.ndarray, i0, i1, weight) -> np.ndarray:
    weight = weight.reshape((-1,) + (1,) * (values.ndim - 1))
    return values[i0] * (1.0 - weight) + values[i1] * weight


def _slerp_axis_angle(axis_angle: np.ndarray, i0, i1, weight) -> np.ndarray:
    """Rotation matrices (N, J, 3, 3) of axis-angle frames (T, J, 3) slerped at sample positions."""
    if not np.any(weight):  # every sample on a source frame (e.g. 120 -> 30 fps): no interpolation
        return axis_angle_to_matrix(axis_angle[i0])
    q0 = axis_angle_to_quaternion(axis_angle[i0])
    q1 = axis_angle_to_quaternion(axis_angle[i1])
    return quaternion_to_matrix(quaternion_slerp(q0, q1, weight[:, None]))


# ----------------------------------------------------------------------------------------------
# canonical features
# ----------------------------------------------------------------------------------------------


def _derivative(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Backward differences / time step; frame 0 copies frame 1; zero where the step is zero."""
    if len(values) < 2:
        return np.zeros_like(values)
    step = np.diff(times).reshape((-1,) + (1,) * (values.ndim - 1))
    diff = np.diff(values, axis=0)
    rate = np.divide(diff, step, out=np.zeros_like(diff), where=step > 0)
    return np.concatenate([rate[:1], rate], axis=0)


def _canonicalize(positions: np.ndarray, heading: np.ndarray, root: np.ndarray):
    """Move ``root[0]``'s ground projection to the origin and turn heading[0] to zero.

    ``positions`` (N, ..., 3) are transformed; returns ``(positions, heading, first_yaw_inverse)``
    with the (3, 3) rotation applied, for transforming orientations too.
    """
    inverse = yaw_matrix(-heading[0])
    origin = np.array([root[0, 0], 0.0, root[0, 2]])
    return (positions - origin) @ inverse.T, wrap_angle(heading - heading[0]), inverse


def _root_block(root: np.ndarray, heading: np.ndarray, times: np.ndarray, facing_inverse: np.ndarray) -> np.ndarray:
    """(N, 4): height, ground velocity in the heading frame (x, z), yaw velocity."""
    velocity = _derivative(root, times)
    local_velocity = (facing_inverse @ velocity[..., None])[..., 0]
    yaw_rate = _derivative(np.unwrap(heading), times)  # unwrap: per-step turns in [-pi, pi)
    return np.stack([root[:, 1], local_velocity[:, 0], local_velocity[:, 2], yaw_rate], axis=-1)


def _local_joints(joints: np.ndarray, root: np.ndarray, facing_inverse: np.ndarray) -> np.ndarray:
    """(N, 66): joints minus the root's ground projection, in the current heading frame."""
    ground = root * np.array([1.0, 0.0, 1.0])
    local = (joints - ground[:, None]) @ np.swapaxes(facing_inverse, -1, -2)
    return local.reshape(len(joints), -1)


def joints_heading(joints: np.ndarray) -> np.ndarray:
    """Heading (N,) of Y-up joint positions from the hips and shoulders (HumanML3D's choice)."""
    across = joints[:, _RIGHT_HIP] - joints[:, _LEFT_HIP] + joints[:, _RIGHT_SHOULDER] - joints[:, _LEFT_SHOULDER]
    # forward = up x across = (across_z, 0, -across_x) for up = +y.
    forward = np.stack([across[:, 2], np.zeros(len(across)), -across[:, 0]], axis=-1)
    return heading_angle(forward, "y")


def joints_features(joints: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``joints22`` features (N, 70) from Y-up joint positions (N, 22, 3) at ``times``."""
    joints, heading, _ = _canonicalize(joints, joints_heading(joints), joints[:, 0])
    root = joints[:, 0]
    facing_inverse = yaw_matrix(-heading)
    return np.concatenate(
        [_root_block(root, heading, times, facing_inverse), _local_joints(joints, root, facing_inverse)], axis=-1
    )


def rotation_features(
    rotations: np.ndarray, root: np.ndarray, times: np.ndarray, offsets: np.ndarray | None
) -> np.ndarray:
    """``smpl22_rot6d[_joints]`` features (N, 136 or 202).

    Args:
        rotations: (N, 22, 3, 3) Y-up root orientation (joint 0) and local body rotations.
        root: (N, 3) Y-up pelvis positions.
        times: (N,) seconds.
        offsets: (22, 3) rest offsets for forward kinematics, or ``None`` for no joint block.
    """
    root_orientation = rotations[:, 0]
    heading = heading_angle(root_orientation[..., :, 2], "y")  # SMPL bodies face their +z
    root, heading, first_inverse = _canonicalize(root, heading, root)
    root_orientation = first_inverse @ root_orientation
    facing_inverse = yaw_matrix(-heading)
    blocks = [
        _root_block(root, heading, times, facing_inverse),
        matrix_to_rotation_6d(facing_inverse @ root_orientation),
        matrix_to_rotation_6d(rotations[:, 1:]).reshape(len(rotations), -1),
    ]
    if offsets is not None:
        local = rotations.copy()
        local[:, 0] = root_orientation
        joints, _ = forward_kinematics(local, root, offsets)
        blocks.append(_local_joints(joints, root, facing_inverse))
    return np.concatenate(blocks, axis=-1)


def _check_finite(source: str, *arrays: np.ndarray) -> None:
    """Inputs are checked for NaN/Inf on load; this catches overflow of huge but finite values."""
    if not all(np.all(np.isfinite(array)) for array in arrays):
        raise ValueError(
            f"{source}: values too large to process (features or times overflowed); check the units "
            "(axis-angle in radians, positions in metres, times in seconds)."
        )


def _tensor_to_numpy(value):
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


# ----------------------------------------------------------------------------------------------
# the feature extractor
# ----------------------------------------------------------------------------------------------


class LlamoMotionProcessor(FeatureExtractionMixin):
    r"""Turns motion clips into normalised canonical per-frame features for LLaMo.

    Saved and loaded as JSON inside the processor config (``FeatureExtractionMixin``). See the module
    docstring for the pipeline and the exact feature layouts.

    Args:
        representation (`str`, *optional*, defaults to `"smpl22_rot6d_joints"`):
            Feature layout the checkpoint expects: `"smpl22_rot6d_joints"` (202), `"smpl22_rot6d"`
            (136), `"joints22"` (70) or `"humanml3d_263"` (263).
        motion_fps (`float`, *optional*, defaults to 30.0):
            Rate of the motion timeline when no video timestamps are given.
        max_motion_frames (`int`, *optional*, defaults to 256):
            Longer motion-only clips are uniformly subsampled to this many frames.
        mean (`list[float]`, *optional*), std (`list[float]`, *optional*):
            Feature statistics (length `feature_dim(representation)`); `None` leaves features as they
            are. Set them with `compute_statistics`.
        up_axis (`str`, *optional*):
            Force the input up axis (`"x"`, `"y"`, `"z"`) for every clip; `None` uses each format's
            default (AMASS: z, others: y).
    """

    model_input_names = ["motion_values", "motion_mask", "motion_timestamps"]

    def __init__(
        self,
        representation: str = "smpl22_rot6d_joints",
        motion_fps: float = 30.0,
        max_motion_frames: int = 256,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        up_axis: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        dim = feature_dim(representation)
        if not (isinstance(motion_fps, numbers.Real) and np.isfinite(motion_fps) and motion_fps > 0):
            raise ValueError(f"motion_fps must be a positive number, got {motion_fps!r}.")
        if not (isinstance(max_motion_frames, numbers.Integral) and max_motion_frames > 0):
            raise ValueError(f"max_motion_frames must be a positive integer, got {max_motion_frames!r}.")
        if up_axis is not None and up_axis not in AXES:
            raise ValueError(f"up_axis must be one of {AXES} or None, got {up_axis!r}.")
        self.representation = representation
        self.motion_fps = float(motion_fps)
        self.max_motion_frames = int(max_motion_frames)
        self.up_axis = up_axis
        self.mean = self._check_statistic(mean, "mean", dim)
        self.std = self._check_statistic(std, "std", dim)
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("std must be positive everywhere (compute_statistics floors it at min_std).")

    @staticmethod
    def _check_statistic(values, name: str, dim: int) -> list[float] | None:
        if values is None:
            return None
        values = np.asarray(_tensor_to_numpy(values), dtype=np.float64).reshape(-1)
        if len(values) != dim or not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must hold {dim} finite numbers for this representation, got {len(values)}.")
        return values.tolist()

    @property
    def feature_dim(self) -> int:
        return feature_dim(self.representation)

    # ------------------------------------------------------------------------------------------

    def __call__(
        self,
        motions,
        timestamps: Sequence | None = None,
        fps=None,
        format: str | None = None,
        body_model=None,
        up_axis: str | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Process a batch of motion clips.

        Args:
            motions: a list with one clip per item: path, array, tensor, dict or `MotionSequence`
                (a single non-list clip is accepted too).
            timestamps: optional list (per clip) of 1-D arrays of seconds at which to sample the
                motion (the sampled video frames' times), or `None` entries for motion-only clips.
            fps: frame rate of the inputs, one number or one per clip (overrides the files').
            format: force the input format (see `motion_formats.FORMATS`).
            body_model: SMPL-family model (path, smplx object, `BodyModel`) for exact joint
                positions; the template skeleton otherwise.
            up_axis: force the input up axis for this call.
            return_tensors: `"pt"`, `"np"` or `None` (numpy).

        Returns:
            `BatchFeature` with `motion_values` (N, T_max, D) float32 (normalised, zero padded),
            `motion_mask` (N, T_max) int64 (1 = real frame, right padding) and
            `motion_timestamps` (N, T_max) float32 seconds (0 at padding).
        """
        if kwargs:
            raise TypeError(f"LlamoMotionProcessor got unexpected arguments: {sorted(kwargs)}")
        clips = list(motions) if isinstance(motions, (list, tuple)) else [motions]
        if not clips:
            raise ValueError("motions is empty; pass a list with at least one clip.")
        per_clip_times = self._per_clip(timestamps, len(clips), "timestamps")
        per_clip_fps = self._per_clip(fps, len(clips), "fps", scalar_ok=True)
        model = load_body_model(body_model) if body_model is not None else None
        features, times = [], []
        for index, clip in enumerate(clips):
            values, clip_times = self.extract_features(
                clip, per_clip_times[index], per_clip_fps[index], format, model, up_axis, source=f"motion {index}"
            )
            with np.errstate(all="ignore"):  # float32 overflow becomes the ValueError below
                values = self.normalize(values).astype(np.float32)
                clip_times = clip_times.astype(np.float32)
            _check_finite(f"motion {index}", values, clip_times)
            features.append(values)
            times.append(clip_times)
        return self._pad(features, times, return_tensors)

    @staticmethod
    def _per_clip(value, count: int, name: str, scalar_ok: bool = False) -> list:
        if value is None:
            return [None] * count
        if scalar_ok and isinstance(value, numbers.Real):
            return [value] * count
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != count:
            raise ValueError(
                f"{name} must be {'a number or ' if scalar_ok else ''}a list with one entry per clip ({count})."
            )
        return [value[index] for index in range(count)]

    def _pad(self, features: list[np.ndarray], times: list[np.ndarray], return_tensors) -> BatchFeature:
        length = max(len(f) for f in features)
        values = np.zeros((len(features), length, self.feature_dim), dtype=np.float32)
        mask = np.zeros((len(features), length), dtype=np.int64)
        stamps = np.zeros((len(features), length), dtype=np.float32)
        for index, (feature, clip_times) in enumerate(zip(features, times, strict=True)):
            values[index, : len(feature)] = feature
            mask[index, : len(feature)] = 1
            stamps[index, : len(feature)] = clip_times
        data = {"motion_values": values, "motion_mask": mask, "motion_timestamps": stamps}
        return BatchFeature(data=data, tensor_type=return_tensors)

    # ------------------------------------------------------------------------------------------

    def extract_features(
        self,
        motion,
        timestamps=None,
        fps=None,
        format: str | None = None,
        body_model=None,
        up_axis: str | None = None,
        source: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Un-normalised features (T, D) float64 of one clip and their times (T,) in seconds.

        Arguments as in `__call__`, for one clip (`source` labels error messages). Raises
        `ValueError` for anything the loader rejects, an impossible conversion, bad timestamps, or
        inputs so large that the features overflow.
        """
        sequence = load_motion(motion, fps=fps, format=format, up_axis=up_axis or self.up_axis, source=source)
        self._check_convertible(sequence)
        if timestamps is None:
            times = _uniform_times(sequence.duration, self.motion_fps, self.max_motion_frames)
        else:
            times = _check_timestamps(timestamps, sequence.source)
        with np.errstate(all="ignore"):  # overflow of absurd inputs becomes the ValueError below
            features = self._features_at(sequence, times, body_model)
        _check_finite(sequence.source, features, times)
        return features, times

    def _check_convertible(self, sequence: MotionSequence) -> None:
        representation, source = self.representation, sequence.source
        if representation == "humanml3d_263" and sequence.humanml3d is None:
            raise ValueError(
                f"{source}: representation 'humanml3d_263' needs HumanML3D 263-d features, but this motion is "
                f"'{sequence.format}'; building them needs HumanML3D's IK and foot-contact pipeline, which is not "
                "reimplemented here. Use representation 'joints22' or 'smpl22_rot6d_joints' instead."
            )
        if representation.startswith("smpl22_rot6d") and sequence.rotations is None:
            raise ValueError(
                f"{source}: representation '{representation}' needs SMPL joint rotations, but this motion is "
                f"'{sequence.format}', which has none (HumanML3D's 6-D rotations follow its own per-bone IK "
                "convention, not SMPL's). Give SMPL parameters (AMASS 'poses'/'trans' or smplx "
                "'global_orient'/'body_pose'), or use a checkpoint with representation 'joints22'."
            )

    def _features_at(self, sequence: MotionSequence, times: np.ndarray, body_model) -> np.ndarray:
        i0, i1, weight = _sample_positions(times, sequence.fps, sequence.num_frames)
        if self.representation == "humanml3d_263":
            return _lerp(sequence.humanml3d, i0, i1, weight)
        if sequence.rotations is None or self.representation == "joints22":
            return joints_features(self.joints_at(sequence, i0, i1, weight, body_model), times)
        rotations, root, offsets = self._posed_skeleton(sequence, i0, i1, weight, body_model)
        with_joints = self.representation == "smpl22_rot6d_joints"
        return rotation_features(rotations, root, times, offsets if with_joints else None)

    def _posed_skeleton(self, sequence: MotionSequence, i0, i1, weight, body_model):
        """Y-up local rotations (slerped), root positions and bone offsets of a rotation-based clip."""
        to_y_up = up_to_y_matrix(sequence.up_axis)
        rotations = _slerp_axis_angle(sequence.rotations, i0, i1, weight)
        rotations[:, 0] = to_y_up @ rotations[:, 0]
        offsets, pelvis = self._rest_skeleton(sequence, body_model)
        translation = sequence.translation if sequence.translation is not None else np.zeros((sequence.num_frames, 3))
        root = (_lerp(translation, i0, i1, weight) + pelvis) @ to_y_up.T
        return rotations, root, offsets

    def joints_at(self, sequence: MotionSequence, i0, i1, weight, body_model=None) -> np.ndarray:
        """World joint positions (T, 22, 3), Y-up, at interpolated frames: stored joints, HumanML3D's recovered
        ones, or forward kinematics of the rotations (user body model, else the template skeleton)."""
        if sequence.rotations is None:
            joints = sequence.joints if sequence.joints is not None else humanml3d_to_joints(sequence.humanml3d)
            return _lerp(joints, i0, i1, weight) @ up_to_y_matrix(sequence.up_axis).T
        rotations, root, offsets = self._posed_skeleton(sequence, i0, i1, weight, body_model)
        return forward_kinematics(rotations, root, offsets)[0]

    def motion_joints(self, motion, fps=None, format: str | None = None, body_model=None, up_axis: str | None = None):
        """(joints (T, 22, 3) Y-up world positions at the clip's own frames, fps) of anything the processor reads:
        for pictures, rendering and checks, through the same conversions the features use."""
        sequence = load_motion(motion, fps=fps, format=format, up_axis=up_axis)
        frames = np.arange(sequence.num_frames)
        model = load_body_model(body_model) if body_model is not None else None
        return self.joints_at(sequence, frames, frames, np.zeros(sequence.num_frames), model), sequence.fps

    @staticmethod
    def _rest_skeleton(sequence: MotionSequence, body_model) -> tuple[np.ndarray, np.ndarray]:
        """(offsets (22, 3), rest pelvis position (3,)) of the clip's body, template when no model.

        SMPL's ``trans`` moves the model whose pelvis sits at its rest position, so the pelvis is at
        ``trans + J_0(betas)``; the template's pelvis is its origin.
        """
        if body_model is None:
            return TEMPLATE_OFFSETS, np.zeros(3)
        model = body_model if isinstance(body_model, BodyModel) else load_body_model(body_model)
        rest = model.rest_joints(sequence.betas)
        return model.offsets(sequence.betas), rest[0]

    # ------------------------------------------------------------------------------------------

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """``(features - mean) / std`` with the stored statistics (identity when unset)."""
        features = np.asarray(features, dtype=np.float64)
        if self.mean is not None:
            features = features - np.asarray(self.mean)
        if self.std is not None:
            features = features / np.asarray(self.std)
        return features

    def denormalize(self, features) -> np.ndarray:
        """Inverse of :meth:`normalize`."""
        features = np.asarray(_tensor_to_numpy(features), dtype=np.float64)
        if self.std is not None:
            features = features * np.asarray(self.std)
        if self.mean is not None:
            features = features + np.asarray(self.mean)
        return features

    def compute_statistics(
        self,
        motions,
        fps=None,
        format: str | None = None,
        body_model=None,
        up_axis: str | None = None,
        min_std: float = 1e-4,
        update: bool = True,
        show_progress: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the un-normalised features over a dataset of clips, per feature.

        Each clip goes through the motion-only timeline (``motion_fps``, ``max_motion_frames``) as
        in training without video. Statistics are merged clip by clip (Chan et al.'s parallel
        variance), so ``motions`` may be a lazy iterable. ``std`` is floored at ``min_std`` so that
        near-constant features (e.g. a 6-D component that barely moves) do not blow up after
        normalisation. With ``update`` the processor's ``mean``/``std`` are set.
        """
        from tqdm.auto import tqdm

        model = load_body_model(body_model) if body_model is not None else None
        count, mean, m2 = 0, np.zeros(self.feature_dim), np.zeros(self.feature_dim)
        for index, clip in enumerate(tqdm(motions, desc="motion statistics", disable=not show_progress)):
            clip_fps = fps[index] if isinstance(fps, (list, tuple)) else fps
            values, _ = self.extract_features(clip, None, clip_fps, format, model, up_axis, source=f"motion {index}")
            clip_mean = values.mean(axis=0)
            clip_m2 = ((values - clip_mean) ** 2).sum(axis=0)
            total = count + len(values)
            delta = clip_mean - mean
            mean = mean + delta * len(values) / total
            m2 = m2 + clip_m2 + delta**2 * count * len(values) / total
            count = total
        if count == 0:
            raise ValueError("compute_statistics got no motions.")
        std = np.maximum(np.sqrt(m2 / count), min_std)
        if update:
            self.mean, self.std = mean.tolist(), std.tolist()
        return mean, std
