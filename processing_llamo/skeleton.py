# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""The SMPL 22-joint body skeleton, a built-in template of it, and forward kinematics.

LLaMo's canonical motion features can include joint positions (docs/SPEC.md section 2). From SMPL
parameters those come from forward kinematics (FK) through a body model; SMPL-family model files
are licensed and never shipped (docs/STACK.md, "Body models and licences"), so without one the
processor uses the template skeleton defined here.

Joint order is SMPL's first 22 joints (the body without hands), which SMPL, SMPL-H and SMPL-X
share, as do HumanML3D ``new_joints`` and BABEL-QA ``joints.npy``.

**The template** (:data:`TEMPLATE_OFFSETS`) is the HumanML3D canonical skeleton in SMPL's rest
T-pose, in SMPL's body frame (Y-up, facing ``+z``, the body's left along ``+x``), metres:

- every bone length is HumanML3D's reference-skeleton length, measured on the shipped sample
  ``tests/fixtures/humanml3d/012314_joints22.npy`` (bone lengths there are constant to 2e-6 over
  all frames because HumanML3D retargets every motion onto one skeleton);
- the joints where several bones meet (pelvis -> hips and spine; upper spine -> neck and collars)
  are rigid in that file, so their full 3-D offsets are read off it, in the frame whose ``x``
  runs from the right to the left hip (resp. collar) and whose ``y`` points to the spine (resp.
  neck): that is where SMPL's hips sit below and behind the pelvis joint;
- every other bone points along SMPL's T-pose axis: legs and spine straight down/up, arms
  straight out sideways (``+-x``), feet forward (``+z``), head up.

So the template reproduces HumanML3D's bone lengths exactly and its pelvis/shoulder girdles
exactly, while SMPL's small rest-pose bone tilts along limbs (e.g. the foot pointing slightly
down, the knee slightly forward) are rounded to the axis. Joint positions from SMPL parameters
through the template are therefore approximate (a few centimetres at the extremities);
pass a body model for exact joints. Note that HumanML3D's own rest pose (``t2m_raw_offsets``) has
the arms hanging down; SMPL's axis-angle poses are relative to a T-pose, hence the T-pose here.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MIRRORED_JOINTS",
    "NUM_JOINTS",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "TEMPLATE_OFFSETS",
    "bone_lengths",
    "forward_kinematics",
    "mirror_joints",
    "template_rest_joints",
]

NUM_JOINTS = 22

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)  # fmt: skip

# Index of each joint's mirror image: left and right swapped, the spine and head on themselves.
MIRRORED_JOINTS = np.array([SMPL_JOINT_NAMES.index(
    name.replace("left_", "@").replace("right_", "left_").replace("@", "right_")) for name in SMPL_JOINT_NAMES])
MIRRORED_JOINTS.setflags(write=False)

# Parent of each joint; every parent precedes its children, which FK relies on.
SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19])

# Rest-pose offset of each joint from its parent (metres, SMPL body frame); see module docstring.
TEMPLATE_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],  # pelvis (root)
        [0.0542673, -0.0839886, -0.0250045],  # left_hip      (rigid pelvis girdle, read off)
        [-0.0662952, -0.0839886, -0.0250045],  # right_hip    (rigid pelvis girdle, read off)
        [0.0032805, 0.1315273, 0.0],  # spine1                (rigid pelvis girdle, read off)
        [0.0, -0.3936232, 0.0],  # left_knee
        [0.0, -0.3901882, 0.0],  # right_knee
        [0.0, 0.1431902, 0.0],  # spine2
        [0.0, -0.4324330, 0.0],  # left_ankle
        [0.0, -0.4256434, 0.0],  # right_ankle
        [0.0, 0.0573647, 0.0],  # spine3
        [0.0, 0.0, 0.1433818],  # left_foot
        [0.0, 0.0, 0.1494191],  # right_foot
        [-0.0066639, 0.2192588, 0.0],  # neck                 (rigid shoulder girdle, read off)
        [0.0661384, 0.1195796, -0.0151340],  # left_collar    (rigid shoulder girdle, read off)
        [-0.0776550, 0.1195796, -0.0151340],  # right_collar  (rigid shoulder girdle, read off)
        [0.0, 0.1030392, 0.0],  # head
        [0.1316140, 0.0, 0.0],  # left_shoulder
        [-0.1229844, 0.0, 0.0],  # right_shoulder
        [0.2568399, 0.0, 0.0],  # left_elbow
        [-0.2630919, 0.0, 0.0],  # right_elbow
        [0.2660118, 0.0, 0.0],  # left_wrist
        [-0.2698763, 0.0, 0.0],  # right_wrist
    ]
)
TEMPLATE_OFFSETS.setflags(write=False)


def template_rest_joints() -> np.ndarray:
    """Rest-pose joint positions (22, 3) of the template with the pelvis at the origin."""
    joints = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        joints[j] = joints[SMPL_PARENTS[j]] + TEMPLATE_OFFSETS[j]
    return joints


def mirror_joints(joints, axis: int = 0) -> np.ndarray:
    """The mirror image (..., 22, 3) of joint positions (..., 22, 3): coordinate ``axis`` negated and the left and
    right joints swapped, so a left-hand wave becomes a right-hand wave, a turn to the left a turn to the right.

    Any reflection gives a valid body once the sides are swapped; ``axis`` only has to be a horizontal one (not the
    up axis), else the mirrored person stands on their head.
    """
    joints = np.asarray(joints)
    joints = joints.astype(np.result_type(joints.dtype, np.float32))  # a copy, in the input's float precision
    if joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"mirror_joints: expected joints (..., {NUM_JOINTS}, 3), got shape {joints.shape}.")
    joints[..., axis] *= -1.0
    return joints[..., MIRRORED_JOINTS, :]


def bone_lengths(joints) -> np.ndarray:
    """Length of each bone (..., 21) from joint positions (..., 22, 3), bone ``j`` = parent -> j+1."""
    joints = np.asarray(joints)
    return np.linalg.norm(joints[..., 1:, :] - joints[..., SMPL_PARENTS[1:], :], axis=-1)


def forward_kinematics(
    local_rotations: np.ndarray,
    root_positions: np.ndarray,
    offsets: np.ndarray = TEMPLATE_OFFSETS,
    parents: np.ndarray = SMPL_PARENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-convention forward kinematics, vectorised over frames.

    Args:
        local_rotations: (T, J, 3, 3). Joint 0 is the root's global orientation, joint ``j > 0``
            its rotation relative to its parent; joint ``j``'s rotation moves its *children*.
        root_positions: (T, 3) world position of joint 0 (for SMPL: ``transl`` plus the body
            model's rest pelvis position; for the template, whose pelvis is the origin, ``transl``).
        offsets: (J, 3) rest-pose offset of each joint from its parent, in the root's body frame.
        parents: (J,) parent indices, each parent before its children.

    Returns:
        ``(joints, global_rotations)``: (T, J, 3) world positions and (T, J, 3, 3) world rotations.
        The loop runs over the 22 joints, never over frames.
    """
    local_rotations = np.asarray(local_rotations)
    num_joints = local_rotations.shape[-3]
    if local_rotations.shape[-2:] != (3, 3) or len(parents) != num_joints or len(offsets) != num_joints:
        raise ValueError(
            f"forward_kinematics: rotations {local_rotations.shape}, offsets {np.shape(offsets)} and "
            f"parents ({len(parents)}) disagree on the number of joints."
        )
    offsets = np.asarray(offsets, dtype=local_rotations.dtype)
    global_rotations = np.empty_like(local_rotations)
    joints = np.empty(local_rotations.shape[:-2] + (3,), dtype=local_rotations.dtype)
    global_rotations[:, 0] = local_rotations[:, 0]
    joints[:, 0] = root_positions
    for j in range(1, num_joints):
        parent = parents[j]
        parent_rotation = global_rotations[:, parent]
        joints[:, j] = joints[:, parent] + parent_rotation @ offsets[j]
        global_rotations[:, j] = parent_rotation @ local_rotations[:, j]
    return joints, global_rotations
