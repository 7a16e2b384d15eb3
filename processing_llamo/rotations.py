# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Vectorised rotation conversions in numpy for the motion processor.

Every function takes arrays with arbitrary leading dimensions (frames, joints, ...) and works on all
of them at once: motion clips are thousands of frames times 22 joints, and a Python loop over
frames would dominate the processor's cost (docs/SPEC.md section 2 asks for canonical motion
features at data-loading speed).

Conventions, fixed once here so the other motion modules never restate them:

- axis-angle: (..., 3), the rotation vector ``angle * unit_axis`` (SMPL / AMASS ``poses``).
- quaternion: (..., 4) in ``(w, x, y, z)`` order, unit norm, right-handed; ``q`` and ``-q`` are
  the same rotation.
- rotation matrix: (..., 3, 3) acting on column vectors, ``v_world = R @ v_local``.
- 6-D: (..., 6), the first two *columns* of the matrix concatenated, ``[R[:, 0], R[:, 1]]``
  (Zhou et al., "On the Continuity of Rotation Representations in Neural Networks", CVPR 2019).
  Continuous, unlike axis-angle or quaternions, which is why the processor feeds it to the model.
- up axis: ``"x"``, ``"y"`` or ``"z"``. A yaw by ``+angle`` about up axis ``k`` turns the
  ground-plane axis ``(k+1) % 3`` toward ``(k+2) % 3`` (right-handed): about ``y`` it turns ``z``
  toward ``x``, about ``z`` it turns ``x`` toward ``y``.

Input dtype (float32 or float64) is kept; integer input is promoted to float64.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AXES",
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "ground_axes",
    "heading_angle",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "quaternion_multiply",
    "quaternion_slerp",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rotation_6d_to_matrix",
    "up_to_y_matrix",
    "wrap_angle",
    "yaw_matrix",
]

AXES = ("x", "y", "z")

# Below this rotation angle (radians) the series expansions replace sin(x)/x, which loses all its
# digits in floating point near zero.
_SMALL_ANGLE = 1e-6


def _as_float(array) -> np.ndarray:
    """Return ``array`` as a float32/float64 ndarray (other dtypes become float64)."""
    array = np.asarray(array)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return array


def _check_last(array: np.ndarray, size: int, name: str) -> None:
    if array.shape[-1:] != (size,):
        raise ValueError(f"{name} must have last dimension {size}, got shape {array.shape}.")


def _axis_index(up_axis: str) -> int:
    if up_axis not in AXES:
        raise ValueError(f"up_axis must be one of {AXES}, got {up_axis!r}.")
    return AXES.index(up_axis)


# ----------------------------------------------------------------------------------------------
# axis-angle <-> quaternion <-> matrix
# ----------------------------------------------------------------------------------------------


def axis_angle_to_quaternion(axis_angle) -> np.ndarray:
    """Axis-angle (..., 3) -> unit quaternion (..., 4) ``(w, x, y, z)``."""
    aa = _as_float(axis_angle)
    _check_last(aa, 3, "axis_angle")
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    small = angle < _SMALL_ANGLE
    # sin(angle/2)/angle, with its Taylor series near zero.
    safe = np.where(small, 1.0, angle)
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / safe)
    return np.concatenate([np.cos(half), aa * scale], axis=-1).astype(aa.dtype, copy=False)


def quaternion_to_axis_angle(quaternion) -> np.ndarray:
    """Unit quaternion (..., 4) -> axis-angle (..., 3) with angle in [0, pi]."""
    q = _as_float(quaternion)
    _check_last(q, 4, "quaternion")
    # q and -q are the same rotation; w >= 0 picks the angle in [0, pi].
    q = np.where(q[..., :1] < 0, -q, q)
    vec = q[..., 1:]
    sin_half = np.linalg.norm(vec, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    small = sin_half < _SMALL_ANGLE
    scale = np.where(small, 2.0, angle / np.where(small, 1.0, sin_half))
    return (vec * scale).astype(q.dtype, copy=False)


def quaternion_to_matrix(quaternion) -> np.ndarray:
    """Quaternion (..., 4) -> rotation matrix (..., 3, 3). Non-unit input is normalised first."""
    q = _as_float(quaternion)
    _check_last(q, 4, "quaternion")
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    rows = (
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    )  # fmt: skip
    return np.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(matrix) -> np.ndarray:
    """Rotation matrix (..., 3, 3) -> unit quaternion (..., 4) with ``w >= 0``.

    Uses the numerically stable branch choice (Shepperd): of the four candidate formulas, each
    element takes the one whose pivot (``4w^2``, ``4x^2``, ...) is largest, so no division by a
    near-zero value happens for 180-degree rotations.
    """
    m = _as_float(matrix)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have trailing shape (3, 3), got {m.shape}.")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Candidate i is 4 * q_i * q, built from sums that are exact for a rotation matrix.
    candidates = np.stack(
        [
            np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], axis=-1),
            np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], axis=-1),
            np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], axis=-1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], axis=-1),
        ],
        axis=-2,
    )
    pivots = np.stack([candidates[..., i, i] for i in range(4)], axis=-1)
    best = np.argmax(pivots, axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(axis_angle) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrix (..., 3, 3) by Rodrigues' formula."""
    aa = _as_float(axis_angle)
    _check_last(aa, 3, "axis_angle")
    angle = np.linalg.norm(aa, axis=-1)[..., None, None]
    small = angle < _SMALL_ANGLE
    safe = np.where(small, 1.0, angle)
    # sin(a)/a and (1 - cos(a))/a^2 with their series near zero.
    a = np.where(small, 1.0 - angle**2 / 6.0, np.sin(angle) / safe)
    b = np.where(small, 0.5 - angle**2 / 24.0, (1.0 - np.cos(angle)) / safe**2)
    x, y, z = np.moveaxis(aa, -1, 0)
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    eye = np.eye(3, dtype=aa.dtype)
    return (eye + a * skew + b * (skew @ skew)).astype(aa.dtype, copy=False)


def matrix_to_axis_angle(matrix) -> np.ndarray:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3), through the quaternion."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


# ----------------------------------------------------------------------------------------------
# 6-D
# ----------------------------------------------------------------------------------------------


def matrix_to_rotation_6d(matrix) -> np.ndarray:
    """Rotation matrix (..., 3, 3) -> 6-D (..., 6): first column, then second column."""
    m = _as_float(matrix)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have trailing shape (3, 3), got {m.shape}.")
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def rotation_6d_to_matrix(rotation_6d) -> np.ndarray:
    """6-D (..., 6) -> rotation matrix (..., 3, 3) by Gram-Schmidt (Zhou et al.).

    Any 6-vector whose halves are not parallel maps to a valid rotation, which is what makes the
    representation usable as a regression target.
    """
    d6 = _as_float(rotation_6d)
    _check_last(d6, 6, "rotation_6d")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


# ----------------------------------------------------------------------------------------------
# quaternion algebra and interpolation
# ----------------------------------------------------------------------------------------------


def quaternion_multiply(q1, q2) -> np.ndarray:
    """Hamilton product ``q1 * q2`` (rotation ``q2`` first, then ``q1``), broadcasting."""
    a, b = np.broadcast_arrays(_as_float(q1), _as_float(q2))
    _check_last(a, 4, "quaternion")
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quaternion_slerp(q0, q1, weight) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions, element-wise.

    ``weight`` broadcasts against ``q0[..., 0]`` (e.g. shape (T, 1) for (T, J, 4) quaternions);
    0 returns ``q0``, 1 returns ``q1`` (up to sign). Takes the short way round (flips ``q1`` when
    ``q0 . q1 < 0``) and falls back to normalised linear interpolation for nearly equal inputs,
    where slerp's ``1 / sin(theta)`` is ill-conditioned and the two agree anyway.
    """
    q0, q1 = np.broadcast_arrays(_as_float(q0), _as_float(q1))
    _check_last(q0, 4, "quaternion")
    t = np.asarray(weight, dtype=q0.dtype)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# yaw / heading about an up axis
# ----------------------------------------------------------------------------------------------


def ground_axes(up_axis: str = "y") -> tuple[int, int]:
    """Indices ``(a, b)`` of the ground-plane axes: a yaw by +angle turns axis ``a`` toward ``b``."""
    k = _axis_index(up_axis)
    return (k + 1) % 3, (k + 2) % 3


def wrap_angle(angle) -> np.ndarray:
    """Wrap angles (radians) to [-pi, pi)."""
    angle = _as_float(angle)
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def yaw_matrix(angle, up_axis: str = "y") -> np.ndarray:
    """Rotation matrices (..., 3, 3) by ``angle`` (...,) radians about ``up_axis``."""
    angle = _as_float(angle)
    k = _axis_index(up_axis)
    a, b = ground_axes(up_axis)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3), dtype=angle.dtype)
    out[..., k, k] = 1.0
    out[..., a, a] = c
    out[..., b, b] = c
    out[..., b, a] = s
    out[..., a, b] = -s
    return out


def heading_angle(direction, up_axis: str = "y") -> np.ndarray:
    """Yaw (...,) of direction vectors (..., 3) projected onto the ground plane.

    Measured about ``up_axis`` from the ground axis ``a`` of :func:`ground_axes` (``+z`` for Y-up),
    so ``heading_angle(yaw_matrix(h) @ e_a) == h``. Pass the body's forward vector in world
    coordinates (e.g. the root rotation's third column for SMPL, whose body faces ``+z``). A vector
    parallel to the up axis has no heading; it gets 0 rather than an error, so that a clip where
    the person lies flat for a frame still processes.
    """
    d = _as_float(direction)
    _check_last(d, 3, "direction")
    a, b = ground_axes(up_axis)
    return np.arctan2(d[..., b], d[..., a])


def up_to_y_matrix(up_axis: str) -> np.ndarray:
    """The proper rotation (3, 3) that maps ``up_axis`` onto ``+y`` (the processor's internal up).

    ``"z"`` (AMASS) -> ``(x, y, z) -> (x, z, -y)``, a -90 degree turn about x that keeps SMPL's
    body-frame forward ``+z`` a ground-plane direction. ``"x"`` -> ``(x, y, z) -> (-y, x, z)``.
    """
    k = _axis_index(up_axis)
    if k == 1:
        return np.eye(3)
    if k == 2:
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    return np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
