# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Reading human motion in the formats of docs/SPEC.md section 2 into one :class:`MotionSequence`.

Supported formats (``format=`` names; detected from keys/shapes unless given):

============== ============================================================== ====== ========
format         content                                                        up     fps
============== ============================================================== ====== ========
``amass``      ``poses`` (T,72 SMPL | T,156 SMPL-H | T,165 SMPL-X axis-angle), ``z``  file key
               ``trans`` (T,3), ``mocap_framerate`` / ``mocap_frame_rate``,
               optional ``betas``, ``gender``
``amass_processed`` ``root_orient`` (T,3), ``pose_body`` (T,63), ``trans`` (T,3) ``z``  given
``smplx``      ``global_orient`` (T,3), ``body_pose`` (T,63|69), optional     ``y``  given
               ``transl`` (T,3), ``betas``
``joints``     joint positions (T,22,3), SMPL joint order                     ``y``  given
``humanml3d``  HumanML3D 263-d features (T,263)                               ``y``  20
============== ============================================================== ====== ========

"given" means the ``fps`` argument (or an ``fps`` / ``mocap_framerate`` key of a dict). An
explicit ``fps`` or ``up_axis`` argument always wins over what the source says.

Sources: ``.npz`` / ``.npy`` paths (always ``allow_pickle=False``: a pickled entry that is needed
raises a ``ValueError``), numpy arrays, torch tensors, dicts of them. Only the 22 body joints are
kept (hand, jaw and eye rotations are dropped); nothing is invented: a missing optional field stays
``None``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from .rotations import AXES, yaw_matrix
from .skeleton import NUM_JOINTS

__all__ = [
    "DEFAULT_UP_AXIS",
    "FORMATS",
    "HUMANML3D_DIM",
    "HUMANML3D_FPS",
    "MotionSequence",
    "detect_format",
    "humanml3d_to_joints",
    "load_motion",
]

FORMATS = ("amass", "amass_processed", "smplx", "joints", "humanml3d")
DEFAULT_UP_AXIS = {"amass": "z", "amass_processed": "z", "smplx": "y", "joints": "y", "humanml3d": "y"}
HUMANML3D_FPS = 20.0
HUMANML3D_DIM = 263
# ``poses`` widths of AMASS files: 24 (SMPL), 52 (SMPL-H), 55 (SMPL-X) joints x 3.
_AMASS_POSE_WIDTHS = {72: "SMPL", 156: "SMPL-H", 165: "SMPL-X"}
# Body pose without the root: 21 body joints (SMPL-H/X) or 23 (SMPL, incl. its two hand joints).
_BODY_POSE_WIDTHS = (63, 69)
_FPS_KEYS = ("fps", "mocap_framerate", "mocap_frame_rate")


@dataclass
class MotionSequence:
    """One motion clip as its source stores it, with its frame rate and up axis.

    Attributes:
        fps: frames per second of the stored frames.
        up_axis: ``"x"``, ``"y"`` or ``"z"``, the world up axis of positions and root orientation.
        format: one of :data:`FORMATS`.
        rotations: (T, 22, 3) axis-angle; joint 0 the global root orientation, the others local
            to their parent (SMPL convention).
        translation: (T, 3) SMPL ``trans`` / ``transl`` (``None`` when the source has none).
        joints: (T, 22, 3) joint positions.
        humanml3d: (T, 263) HumanML3D features.
        betas: (B,) body shape, when the source has one.
        gender: body-model gender string, when the source has one.
        source: the file name, or a label, for error messages.
    """

    fps: float
    up_axis: str
    format: str
    rotations: np.ndarray | None = None
    translation: np.ndarray | None = None
    joints: np.ndarray | None = None
    humanml3d: np.ndarray | None = None
    betas: np.ndarray | None = None
    gender: str | None = None
    source: str = "<motion>"

    @property
    def num_frames(self) -> int:
        for data in (self.rotations, self.joints, self.humanml3d):
            if data is not None:
                return len(data)
        return 0

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps


# ----------------------------------------------------------------------------------------------
# reading sources
# ----------------------------------------------------------------------------------------------


class _Pickled:
    """Marks an ``.npz`` entry that would need unpickling; an error only if the entry is used."""


def _read_path(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Motion file not found: {path}")
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".npz", ".npy"):
        raise ValueError(f"{path}: unsupported motion file type '{extension}'; use .npz or .npy (numpy arrays).")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as error:  # a pickled .npy
        raise ValueError(f"{path}: contains a pickled object array; refusing to unpickle it ({error}).") from error
    except Exception as error:
        raise ValueError(f"{path}: not a readable numpy file ({type(error).__name__}: {error}).") from error
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        data = {}
        for key in loaded.files:
            try:
                data[key] = loaded[key]
            except ValueError:
                data[key] = _Pickled()
    return data


def _to_numpy(value):
    """numpy view of a tensor/array/number without importing torch."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return value


def detect_format(data) -> str | None:
    """Format name from a dict's keys or an array's shape, ``None`` when nothing matches."""
    if isinstance(data, dict):
        keys = set(data)
        if "poses" in keys:
            return "amass"
        if {"root_orient", "pose_body"} <= keys:
            return "amass_processed"
        if {"global_orient", "body_pose"} <= keys:
            return "smplx"
        if "joints" in keys:
            return "joints"
        if "humanml3d" in keys:
            return "humanml3d"
        return None
    shape = np.shape(data)
    if len(shape) == 3 and shape[1:] == (NUM_JOINTS, 3):
        return "joints"
    if len(shape) == 2 and shape[1] == HUMANML3D_DIM:
        return "humanml3d"
    return None


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _field(data: dict, key: str, source: str, required: bool = True):
    value = data.get(key)
    if isinstance(value, _Pickled):
        raise ValueError(
            f"{source}: entry '{key}' is a pickled object array; refusing to unpickle it "
            "(save plain numeric arrays, e.g. np.savez(path, poses=poses.astype(np.float32), ...))."
        )
    if value is None:
        if required:
            raise ValueError(f"{source}: missing key '{key}' (keys present: {sorted(data)}).")
        return None
    return _to_numpy(value)


def _numeric(value, name: str, source: str, width: tuple[int, ...] | None = None) -> np.ndarray:
    """float64 array with ``T > 0`` frames, trailing shape in ``width`` (if given), all finite."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: '{name}' is not numeric ({error}).") from error
    if array.ndim == 0 or len(array) == 0:
        raise ValueError(f"{source}: '{name}' is empty (shape {array.shape}); a motion needs at least one frame.")
    if width is not None and array.shape[1:] != width:
        raise ValueError(f"{source}: '{name}' has shape {array.shape}, expected (T, {', '.join(map(str, width))}).")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{source}: '{name}' contains NaN or Inf values.")
    return array


def _frames_2d(value, name: str, source: str, widths: tuple[int, ...]) -> np.ndarray:
    """(T, width) array; (T, J, 3) input is flattened first (smplx returns both layouts)."""
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[-1] == 3:
        array = array.reshape(len(array), -1)
    if array.ndim != 2 or array.shape[1] not in widths:
        raise ValueError(f"{source}: '{name}' has shape {array.shape}, expected (T, {' or '.join(map(str, widths))}).")
    return _numeric(array, name, source)


def _same_length(source: str, **arrays) -> None:
    lengths = {name: len(array) for name, array in arrays.items() if array is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{source}: frame counts disagree: {lengths}.")


def _resolve_fps(fps, data, source: str, default: float | None) -> float:
    if fps is None and isinstance(data, dict):
        for key in _FPS_KEYS:
            if key in data and not isinstance(data[key], _Pickled):
                fps = _to_numpy(data[key])
                break
    if fps is None:
        fps = default
    if fps is None:
        raise ValueError(
            f"{source}: no frame rate; pass fps=... (this format does not store one; AMASS files do as "
            "'mocap_framerate', HumanML3D features are 20 fps)."
        )
    try:
        fps = float(np.asarray(fps, dtype=np.float64).reshape(()))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: fps must be one positive number, got {fps!r}.") from error
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"{source}: fps must be a finite positive number, got {fps}.")
    return fps


def _optional_betas(data: dict, source: str) -> np.ndarray | None:
    betas = _field(data, "betas", source, required=False)
    if betas is None:
        return None
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim == 2:  # per-frame (T, B) copies of one shape: keep the first
        betas = betas[0]
    if betas.ndim != 1 or not np.all(np.isfinite(betas)):
        raise ValueError(f"{source}: 'betas' must be a finite (B,) or (T, B) array, got shape {betas.shape}.")
    return betas


def _optional_gender(data: dict) -> str | None:
    gender = data.get("gender")
    if gender is None or isinstance(gender, _Pickled):
        return None
    gender = np.asarray(_to_numpy(gender)).reshape(-1)
    if gender.size != 1:
        return None
    value = gender[0]
    return value.decode() if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------------------------------------
# per-format parsers
# ----------------------------------------------------------------------------------------------


def _smpl_sequence(fmt, root, body, translation, data, fps, up_axis, source) -> MotionSequence:
    """Assemble SMPL-parameter formats: root (T,3) + body (T,>=63) -> 22 axis-angle joints."""
    _same_length(source, root=root, body=body, translation=translation)
    rotations = np.concatenate([root, body[:, : 3 * (NUM_JOINTS - 1)]], axis=1).reshape(len(root), NUM_JOINTS, 3)
    return MotionSequence(
        fps=fps,
        up_axis=up_axis,
        format=fmt,
        rotations=rotations,
        translation=translation,
        betas=_optional_betas(data, source),
        gender=_optional_gender(data),
        source=source,
    )


def _parse_amass(data, fps, up_axis, source) -> MotionSequence:
    poses = _numeric(_field(data, "poses", source), "poses", source)
    if poses.ndim != 2 or poses.shape[1] not in _AMASS_POSE_WIDTHS:
        raise ValueError(
            f"{source}: 'poses' has shape {poses.shape}; AMASS poses are (T, 72) SMPL, (T, 156) SMPL-H "
            "or (T, 165) SMPL-X."
        )
    translation = _numeric(_field(data, "trans", source), "trans", source, (3,))
    fps = _resolve_fps(fps, data, source, None)
    return _smpl_sequence("amass", poses[:, :3], poses[:, 3:], translation, data, fps, up_axis, source)


def _parse_amass_processed(data, fps, up_axis, source) -> MotionSequence:
    root = _frames_2d(_field(data, "root_orient", source), "root_orient", source, (3,))
    body = _frames_2d(_field(data, "pose_body", source), "pose_body", source, _BODY_POSE_WIDTHS)
    translation = _numeric(_field(data, "trans", source), "trans", source, (3,))
    fps = _resolve_fps(fps, data, source, None)
    return _smpl_sequence("amass_processed", root, body, translation, data, fps, up_axis, source)


def _parse_smplx(data, fps, up_axis, source) -> MotionSequence:
    root = _frames_2d(_field(data, "global_orient", source), "global_orient", source, (3,))
    body = _frames_2d(_field(data, "body_pose", source), "body_pose", source, _BODY_POSE_WIDTHS)
    translation = _field(data, "transl", source, required=False)
    if translation is not None:
        translation = _numeric(translation, "transl", source, (3,))
    fps = _resolve_fps(fps, data, source, None)
    return _smpl_sequence("smplx", root, body, translation, data, fps, up_axis, source)


def _parse_joints(data, fps, up_axis, source) -> MotionSequence:
    array = _field(data, "joints", source) if isinstance(data, dict) else data
    joints = _numeric(array, "joints", source, (NUM_JOINTS, 3))
    fps = _resolve_fps(fps, data, source, None)
    return MotionSequence(fps=fps, up_axis=up_axis, format="joints", joints=joints, source=source)


def _parse_humanml3d(data, fps, up_axis, source) -> MotionSequence:
    array = _field(data, "humanml3d", source) if isinstance(data, dict) else data
    features = _numeric(array, "humanml3d", source, (HUMANML3D_DIM,))
    fps = _resolve_fps(fps, data, source, HUMANML3D_FPS)
    return MotionSequence(fps=fps, up_axis=up_axis, format="humanml3d", humanml3d=features, source=source)


_PARSERS = {
    "amass": _parse_amass,
    "amass_processed": _parse_amass_processed,
    "smplx": _parse_smplx,
    "joints": _parse_joints,
    "humanml3d": _parse_humanml3d,
}


def load_motion(
    motion, *, fps=None, format: str | None = None, up_axis: str | None = None, source: str | None = None
) -> MotionSequence:
    """Read one motion clip into a :class:`MotionSequence`.

    Args:
        motion: a ``.npz``/``.npy`` path, a numpy array or torch tensor, a dict of them, or a
            :class:`MotionSequence` (``fps`` / ``up_axis`` overrides applied to it).
        fps: frame rate; overrides the file's. Required where the format stores none.
        format: one of :data:`FORMATS`; detected when ``None``.
        up_axis: ``"x"``/``"y"``/``"z"``; defaults to the format's (:data:`DEFAULT_UP_AXIS`).
        source: a label for error messages (defaults to the path, or ``"<motion>"``).

    Raises:
        ValueError: unknown format, wrong widths, NaN/Inf, non-positive fps, no frames, pickled
            content or missing keys; the message names the source.
    """
    if up_axis is not None and up_axis not in AXES:
        raise ValueError(f"up_axis must be one of {AXES}, got {up_axis!r}.")
    if isinstance(motion, MotionSequence):
        overrides = {"up_axis": up_axis} if up_axis else {}
        if fps is not None:
            overrides["fps"] = _resolve_fps(fps, None, motion.source, None)
        return dataclasses.replace(motion, **overrides)
    if isinstance(motion, (str, os.PathLike)):
        source = source or os.fspath(motion)
        data = _read_path(os.fspath(motion))
    else:
        source = source or "<motion>"
        data = (
            {key: _to_numpy(value) for key, value in motion.items()} if isinstance(motion, dict) else _to_numpy(motion)
        )
    if not isinstance(data, dict):
        data = np.asarray(data)
    if format is None:
        format = detect_format(data)
        if format is None:
            described = f"keys {sorted(data)}" if isinstance(data, dict) else f"an array of shape {data.shape}"
            raise ValueError(
                f"{source}: unknown motion format ({described}). Expected AMASS 'poses'/'trans', "
                "'root_orient'/'pose_body'/'trans', smplx 'global_orient'/'body_pose', joints (T, 22, 3) "
                f"or HumanML3D (T, 263); or pass format= one of {FORMATS}."
            )
    elif format not in _PARSERS:
        raise ValueError(f"{source}: unknown motion format {format!r}; expected one of {FORMATS}.")
    if format in ("amass", "amass_processed", "smplx") and not isinstance(data, dict):
        raise ValueError(f"{source}: format '{format}' needs a dict or .npz of named arrays, got an array.")
    return _PARSERS[format](data, fps, up_axis or DEFAULT_UP_AXIS[format], source)


# ----------------------------------------------------------------------------------------------
# HumanML3D 263-d -> joint positions
# ----------------------------------------------------------------------------------------------


def humanml3d_to_joints(features: np.ndarray) -> np.ndarray:
    """Recover joint positions (T, 22, 3), Y-up, from HumanML3D 263-d features (T, 263).

    Layout of the features (Guo et al., CVPR 2022): ``[0]`` root yaw velocity (half-angle per
    frame), ``[1:3]`` root ground velocity (x, z) in the root's facing frame, ``[3]`` root height,
    ``[4:67]`` joints 1-21 relative to the root's ground projection in the facing frame ("RIC"),
    ``[67:193]`` 6-D rotations, ``[193:259]`` joint velocities, ``[259:263]`` foot contacts.
    Positions are rebuilt by integrating the root yaw and velocity and un-rotating the RIC joints,
    the same maths as HumanML3D's ``recover_from_ric`` (re-implemented here, not copied); the
    6-D rotations are not used: they follow HumanML3D's own per-bone IK convention, not SMPL's.
    """
    features = np.asarray(features, dtype=np.float64)
    num_frames = len(features)
    # The root's facing rotation about +y: HumanML3D accumulates half-angles; frame t uses the
    # velocities up to t-1, so frame 0 faces +z.
    half_angle = np.zeros(num_frames)
    half_angle[1:] = np.cumsum(features[:-1, 0])
    world_from_facing = yaw_matrix(-2.0 * half_angle)
    step = np.zeros((num_frames, 3))
    step[1:, [0, 2]] = features[:-1, 1:3]
    root = np.cumsum(world_from_facing @ step[..., None], axis=0)[..., 0]
    root[:, 1] = features[:, 3]
    local = features[:, 4 : 4 + 3 * (NUM_JOINTS - 1)].reshape(num_frames, NUM_JOINTS - 1, 3)
    body = local @ np.swapaxes(world_from_facing, -1, -2)
    body[..., 0] += root[:, None, 0]
    body[..., 2] += root[:, None, 2]
    return np.concatenate([root[:, None], body], axis=1)
