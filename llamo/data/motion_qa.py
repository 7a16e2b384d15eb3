# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""A procedurally generated motion question-answering suite in the BABEL-QA layout.

Why: BABEL-QA (docs/SPEC.md section 5) needs AMASS + BABEL + SMPL-H, all licensed, so nothing of it
can be shipped. This module synthesises motions whose labels are known by construction (which action,
when, how many times, which side, which direction, how fast), asks questions about them in BABEL-QA's
form with its closed answer vocabulary, adds counting questions (Mo-RepCount style) and free-text
descriptions, renders each motion as a person figure into a video (:mod:`llamo.data.render`), and
writes everything in BABEL-QA's on-disk layout so that one loader (:func:`load_babel_qa`) serves both
the suite and the real benchmark.

Motions
-------
Each action is a parametric function of a cycle phase, written as *pose channels*: torso angles
(pelvis / spine pitch, roll, yaw, neck pitch), bone directions of the legs (thigh, shank, foot) in the
body's heading frame and of the arms (upper arm, forearm) in the torso frame, plus a root velocity in
the heading frame, a yaw rate and a flight height. Channels of consecutive segments are cross-faded
over a few frames (each segment holds its first/last pose outside its span), then turned into SMPL
local joint rotations (joint ``j``'s rotation moves its children; minimal "swing" rotations from the
template's rest bone direction to the wanted direction) and run through the forward kinematics of
:mod:`processing_llamo.skeleton` on the template skeleton scaled per subject. The root height comes
from ground contact (lowest foot joint ``FOOT_CLEARANCE`` above the floor) plus the flight height, so
a squat's pelvis minima, a jump's airborne phases and so on follow from the pose, not from a separate
curve. Subject variation: overall size and per-bone scale, a fixed per-joint posture offset, smooth
timing jitter of each segment's phase, per-segment amplitude and speed, small smooth rotation noise.

Coordinates: internally and in :class:`MotionSample`, SMPL's body convention, **Y-up**, metres,
30 fps, the floor at ``y = 0``; the body faces ``+z`` in its rest pose, its left is ``+x``.

On disk (BABEL-QA layout, see ``markendo/HumanMotionQA``)::

    <root>/
      questions.json            {question_id: {question, answer, query_type, relation_type, babel_id,
                                  program, filter_answer_0[, filter_answer_1], question_id, split}}
      split_question_ids.json   {"train": [...], "val": [...], "test": [...], "heldout": [...]}
      motion_concepts.json      {babel_id: [{start_f, end_f, attributes: {action, direction?,
                                  body_part?}, count?, speed?, ...}]}
      metadata.json             suite parameters, vocabulary, per-sequence split / labels / camera
      motion_sequences/<babel_id>/
        joints.npy              (T, 22, 3) float32, BABEL-QA's NSPose convention: **Z-up**, floor at
                                z = 0, first-frame pelvis at x = y = 0, turned about z so the first
                                frame's right-hip minus left-hip vector is +x (the person faces +y)
        pose.npz                AMASS-style, **Z-up**: poses (T, 156) SMPL-H axis-angle (22 body
                                joints, then zeros for the hands), trans (T, 3), mocap_framerate = 30,
                                betas (16,), gender; also HuMoR/BABEL-QA's root_orient, pose_body,
                                pose_hand, fps, and skeleton_offsets (22, 3), the subject's template
                                bone offsets (``trans`` is the pelvis position of that template
                                skeleton, not SMPL's ``trans`` which excludes the body model's rest
                                pelvis offset)
        video.mp4 | video.webm  the rendered figure (optional)

The Y-up -> Z-up conversion is the proper rotation ``(x, y, z) -> (x, -z, y)`` (inverse of
``processing_llamo.rotations.up_to_y_matrix("z")``), applied to root orientation, translation and
joints. Real BABEL-QA's ``pose.npz`` holds ``root_orient``/``pose_body``/``trans`` (HuMoR style);
the ``poses`` key is added here so AMASS readers (``processing_llamo.motion_formats``) read it too.

Questions follow BABEL-QA's templates and programs: ``query_type`` in ``query_action``,
``query_direction``, ``query_body_part`` and ``relation_type`` in ``no_relation``, ``before``,
``after``, ``in_between``; a filter concept must be unique in its sequence. Added here:
``query_count`` ("How many times does the person squat?", answer a decimal string) and
``query_description`` (a caption listing the actions in order).

Splits: ``train`` / ``val`` / ``test`` at random, and ``heldout``: sequences containing an ordered
pair of consecutive actions never generated outside ``heldout`` (unseen combinations) or a segment
whose speed factor lies in :data:`HELDOUT_SPEED_RANGE`, excluded everywhere else (unseen speeds).

Everything is deterministic for a seed: sequence ``i`` draws from ``SeedSequence(seed,
spawn_key=(i,))``, so a suite's first ``n`` sequences do not depend on how many are generated.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from dataclasses import dataclass, field

import numpy as np

from processing_llamo.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    yaw_matrix,
)
from processing_llamo.skeleton import (
    MIRRORED_JOINTS,
    NUM_JOINTS,
    TEMPLATE_OFFSETS,
    forward_kinematics,
)

__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "BABEL_QA_ACTIONS",
    "BABEL_QA_BODY_PARTS",
    "BABEL_QA_DIRECTIONS",
    "COUNTABLE_ACTIONS",
    "FPS",
    "HELDOUT_SPEED_RANGE",
    "BabelQAItem",
    "MotionSample",
    "SegmentSpec",
    "SequenceSpec",
    "SubjectSpec",
    "babel_joints",
    "count_airborne",
    "count_maxima",
    "count_minima",
    "describe",
    "generate_sequence",
    "generate_suite",
    "load_babel_qa",
    "suite_has_videos",
    "make_questions",
    "sample_spec",
    "to_amass",
]

FPS = 30.0
FOOT_CLEARANCE = 0.05  # height (m) of the lowest ankle/foot joint above the floor in contact
BLEND_FRAMES = 8  # cross-fade half-width between consecutive segments (frames)

# ----------------------------------------------------------------------------------------------
# vocabulary
# ----------------------------------------------------------------------------------------------

#: BABEL-QA's 55 action concepts (extract_motion_concepts.py after merging synonyms, "transition" dropped).
BABEL_QA_ACTIONS = (
    "bow", "cartwheel", "catch", "clap", "cough", "crawl", "crouch", "dribble", "drink", "duck", "eat",
    "fall", "fight", "fire gun", "fish", "fist bump", "flail arms", "flap", "flip", "golf", "handstand",
    "hug", "jog", "juggle", "jump", "jump rope", "jumping jacks", "kick", "kneel", "knock", "leap",
    "limp", "lunge", "march", "mix", "moonwalk", "place something", "punch", "rake", "run", "salute",
    "shuffle", "sit", "skate", "skip", "sneeze", "squat", "stand up", "take/pick something up", "throw",
    "tie", "tiptoe", "walk", "wave", "yawn",
)  # fmt: skip
BABEL_QA_BODY_PARTS = ("left hand", "right hand", "left arm", "right arm", "left leg", "right leg", "left foot", "right foot")
BABEL_QA_DIRECTIONS = ("left", "right", "forward", "backwards")


@dataclass(frozen=True)
class ActionDef:
    """One generated action: its answer name and how it is sampled."""

    name: str
    rate: float  # nominal cycles per second (gait cycles for locomotion)
    countable: bool = False  # asked in counting questions; ``count`` = repetitions
    directions: tuple = (None,)  # direction labels it may carry (None = no direction)
    sided: bool = False  # done with one side (left/right) of the body
    part: str | None = None  # body-part kind labelled when sided: hand, arm, leg, foot
    duration: tuple = (2.0, 4.5)  # seconds, for non-countable actions
    setup: float = 0.0  # seconds spent raising/lowering limbs around the repetitions
    max_count: int = 12
    verb: str = ""  # base form for counting questions ("How many times does the person <verb>?")


ACTIONS: dict[str, ActionDef] = {
    a.name: a
    for a in [
        ActionDef("walk", 0.9, directions=("forward", "backwards", "left", "right"), duration=(2.0, 5.0)),
        ActionDef("jog", 1.25, directions=("forward",), duration=(2.0, 4.0)),
        ActionDef("run", 1.45, directions=("forward",), duration=(2.0, 4.0)),
        ActionDef("march", 0.9, duration=(2.0, 4.0)),
        ActionDef("turn", 1.0, directions=("left", "right"), duration=(1.5, 3.0)),
        ActionDef("jump", 0.9, countable=True, directions=(None, "forward", "backwards", "left", "right"), verb="jump"),
        ActionDef("squat", 0.6, countable=True, verb="squat"),
        ActionDef("jumping jacks", 1.0, countable=True, verb="do jumping jacks"),
        ActionDef("wave", 1.8, countable=True, sided=True, part="hand", setup=0.9, verb="wave"),
        ActionDef("arm circles", 1.0, countable=True, sided=True, part="arm", setup=0.8, verb="do arm circles"),
        ActionDef("kick", 0.7, countable=True, sided=True, part="foot", directions=("forward", "side"), verb="kick"),
        ActionDef("punch", 1.4, countable=True, sided=True, part="arm", directions=("forward",), setup=0.8, verb="punch"),
        ActionDef("lunge", 0.45, countable=True, sided=True, part="leg", directions=("forward", "backwards"), verb="lunge"),
        ActionDef("clap", 2.0, countable=True, setup=0.7, verb="clap"),
        ActionDef("bow", 0.5, countable=True, max_count=6, verb="bow"),
        ActionDef("sit", 1.0, duration=(1.6, 2.6)),
        ActionDef("stand up", 1.0, duration=(1.6, 2.6)),
    ]
}
ACTION_NAMES = tuple(ACTIONS)
COUNTABLE_ACTIONS = tuple(a for a, d in ACTIONS.items() if d.countable)
#: Speed factors (times the action's nominal rate) seen in train/val/test; HELDOUT_SPEED_RANGE only in heldout.
SPEED_RANGE = (0.6, 1.3)
HELDOUT_SPEED_RANGE = (1.4, 1.7)  # a gap of 0.1 separates it from SPEED_RANGE

# ----------------------------------------------------------------------------------------------
# specs and samples
# ----------------------------------------------------------------------------------------------


@dataclass
class SegmentSpec:
    """One action segment. ``side`` is "left"/"right"/"both"/None; ``direction`` a BABEL-QA direction,
    "side" (kick: toward the kicking leg's side, labelled left/right) or None."""

    action: str
    count: int = 1
    direction: str | None = None
    side: str | None = None
    speed: float = 1.0  # speed factor relative to the action's nominal rate
    amplitude: float = 1.0
    duration: float | None = None  # seconds; derived from count/speed when None
    turn_angle: float = 90.0  # degrees, for "turn"


@dataclass
class SubjectSpec:
    """Per-subject body: overall scale, per-bone scale (21,), posture offsets (22, 3) radians."""

    scale: float = 1.0
    bone_scale: np.ndarray | None = None
    posture: np.ndarray | None = None
    noise: float = 0.012  # std (radians) of the smooth rotation noise


@dataclass
class SequenceSpec:
    segments: list[SegmentSpec]
    subject: SubjectSpec = field(default_factory=SubjectSpec)
    heading: float = 0.0  # initial yaw (radians)
    start: tuple = (0.0, 0.0)  # initial pelvis (x, z)
    fps: float = FPS


@dataclass
class MotionSample:
    """A generated motion (Y-up, metres) and its labels.

    ``rotations`` (T, 22, 3) SMPL axis-angle (joint 0 the global root orientation), ``trans`` (T, 3) the
    pelvis position, ``joints`` (T, 22, 3), ``offsets`` (22, 3) the subject's skeleton, ``segments`` one
    label dict per action segment (``action``, ``start_f``, ``end_f`` exclusive, ``count``, ``direction``,
    ``body_part``, ``side``, ``speed`` cycles/s, ``speed_factor``, ``amplitude``, ...).
    """

    rotations: np.ndarray
    trans: np.ndarray
    joints: np.ndarray
    offsets: np.ndarray
    fps: float
    segments: list[dict]
    spec: SequenceSpec

    @property
    def num_frames(self) -> int:
        return len(self.joints)


# ----------------------------------------------------------------------------------------------
# small numeric helpers
# ----------------------------------------------------------------------------------------------


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _limb(abd, flex, side):
    """Unit bone direction: hanging straight down, abducted ``abd`` toward ``side`` (+1 left = +x,
    -1 right) in the frontal plane, then flexed ``flex`` toward +z (forward). Broadcasts; (..., 3)."""
    abd, flex = np.broadcast_arrays(np.asarray(abd, float), np.asarray(flex, float))
    return np.stack([side * np.sin(abd), -np.cos(abd) * np.cos(flex), np.cos(abd) * np.sin(flex)], axis=-1)


def _normalize(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _swing(rest, target):
    """Minimal rotation matrices (..., 3, 3) taking the unit vector ``rest`` (3,) onto ``target`` (..., 3)."""
    target = _normalize(target)
    v = np.cross(rest, target)
    c = target @ rest
    k = np.zeros(target.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2] = -v[..., 2], v[..., 1]
    k[..., 1, 0], k[..., 1, 2] = v[..., 2], -v[..., 0]
    k[..., 2, 0], k[..., 2, 1] = -v[..., 1], v[..., 0]
    return np.eye(3) + k + (k @ k) / np.maximum(1.0 + c, 1e-6)[..., None, None]


def _rot_x(a):
    a = np.asarray(a, float)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1], out[..., 1, 2], out[..., 2, 1], out[..., 2, 2] = c, -s, s, c
    return out


def _rot_z(a):
    a = np.asarray(a, float)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    out[..., 2, 2] = 1.0
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1] = c, -s, s, c
    return out


def _smooth_noise(rng, shape, width=9):
    """Gaussian noise smoothed along axis 0 by a moving average (unit std after smoothing)."""
    raw = rng.standard_normal((shape[0] + width - 1,) + tuple(shape[1:]))
    c = np.cumsum(raw, axis=0)
    c = np.concatenate([np.zeros((1,) + c.shape[1:]), c], axis=0)
    return (c[width:] - c[:-width]) / np.sqrt(width)


# ----------------------------------------------------------------------------------------------
# actions as pose channels
# ----------------------------------------------------------------------------------------------

_SCALAR_CHANNELS = ("pelvis_pitch", "pelvis_roll", "spine_pitch", "spine_roll", "spine_yaw", "neck_pitch", "yaw_rate", "flight")
_VECTOR_CHANNELS = ("l_thigh", "l_shank", "l_foot", "r_thigh", "r_shank", "r_foot", "l_upper", "l_fore", "r_upper", "r_fore", "vel")
_REST_ARM = (0.14, 0.04, 0.22)  # abduction, flexion, elbow bend of a hanging arm
_SIDE = {"left": 1.0, "right": -1.0}


def _neutral(n):
    """Standing pose channels for ``n`` frames (legs straight, feet forward, arms hanging)."""
    z = np.zeros(n)
    ch = {k: z.copy() for k in _SCALAR_CHANNELS}
    for s, p in ((1.0, "l"), (-1.0, "r")):
        ch[f"{p}_thigh"] = np.repeat(_limb(0.04, 0.0, s)[None], n, 0)
        ch[f"{p}_shank"] = np.repeat(_limb(0.03, -0.02, s)[None], n, 0)
        ch[f"{p}_foot"] = np.repeat(np.array([[s * 0.12, 0.0, 1.0]]), n, 0)
        a, f, e = _REST_ARM
        ch[f"{p}_upper"] = np.repeat(_limb(a, f, s)[None], n, 0)
        ch[f"{p}_fore"] = np.repeat(_limb(a, f + e, s)[None], n, 0)
    ch["vel"] = np.zeros((n, 3))
    return ch


def _set_leg(ch, p, s, abd, flex, knee, foot=None):
    ch[f"{p}_thigh"] = _limb(abd, flex, s)
    ch[f"{p}_shank"] = _limb(abd * 0.8, flex - knee, s)
    if foot is not None:
        ch[f"{p}_foot"] = foot


def _set_arm(ch, p, s, abd, flex, elbow):
    ch[f"{p}_upper"] = _limb(abd, flex, s)
    ch[f"{p}_fore"] = _limb(abd, flex + elbow, s)


def _envelope(u, dur, setup):
    """Raise/lower envelope (0 -> 1 -> 0) over ``setup/2`` seconds at each end, and the phase fraction
    ``x`` in [0, 1] of the part in between."""
    if setup <= 0:
        return np.ones_like(u), u
    a = min(0.45, 0.5 * setup / max(dur, 1e-6))
    e = _smoothstep(u / a) * _smoothstep((1.0 - u) / a)
    return e, np.clip((u - a) / (1.0 - 2.0 * a), 0.0, 1.0)


def _gait(ch, phi, amp, knee_gain, arm_gain, elbow, lean=0.0):
    """Alternating leg swing (forward-backward) with knee flexion in swing and opposite arm swing."""
    for s, p, off in ((1.0, "l", 0.0), (-1.0, "r", np.pi)):
        ang = 2 * np.pi * phi + off
        flex = amp * np.sin(ang)
        knee = 0.08 + knee_gain * np.maximum(0.0, np.cos(ang)) ** 1.5
        foot = np.stack([np.full_like(flex, s * 0.12), 0.5 * np.maximum(0.0, np.sin(ang)) * amp, np.ones_like(flex)], -1)
        _set_leg(ch, p, s, 0.04, flex, knee, foot)
        _set_arm(ch, p, s, _REST_ARM[0], -arm_gain * amp * np.sin(ang), elbow)
    ch["pelvis_pitch"] = ch["pelvis_pitch"] + lean


def _act(seg: SegmentSpec, u, dur, phase_warp, subject_scale):
    """Pose channels of ``seg`` at normalised times ``u`` (held outside [0, 1])."""
    u = np.clip(u, 0.0, 1.0)
    n = len(u)
    ch = _neutral(n)
    d = ACTIONS[seg.action]
    amp = seg.amplitude
    s = _SIDE.get(seg.side, 1.0)
    p = "l" if s > 0 else "r"
    q = "r" if s > 0 else "l"
    e, x = _envelope(u, dur, d.setup)
    cycles = seg.count if d.countable else max(1.0, dur * d.rate * seg.speed)
    phi = cycles * phase_warp(x)  # cycle phase
    frac = phi - np.floor(phi)
    frac = np.where(phi >= cycles, 0.0, frac)
    bump = np.sin(np.pi * frac) ** 2  # 0 -> 1 -> 0 once per cycle
    rate = cycles / dur  # cycles per second
    leg = 0.82 * subject_scale
    a = seg.action
    if a in ("walk", "jog", "run", "march", "turn"):
        params = {"walk": (0.42, 0.9, 0.8, 0.3, 0.04), "jog": (0.55, 1.4, 0.9, 1.3, 0.1), "run": (0.7, 1.7, 1.0, 1.5, 0.16),
                  "march": (0.0, 0.0, 0.0, 0.4, 0.0), "turn": (0.14, 0.6, 0.5, 0.3, 0.0)}[a]  # fmt: skip
        sw, kg, ag, elbow, lean = params
        sw *= amp
        sign = -1.0 if seg.direction == "backwards" else 1.0
        if a != "turn" and seg.direction in ("left", "right"):  # side steps: alternate abduction, velocity sideways
            ls = _SIDE[seg.direction]
            ang = 2 * np.pi * phi
            ab = 0.28 * amp
            lead = ab * np.maximum(0.0, np.sin(ang)) + 0.04
            trail = ab * 0.5 * np.maximum(0.0, -np.sin(ang)) + 0.04
            knee = 0.35 * np.abs(np.sin(ang))
            lp, tp = ("l", "r") if ls > 0 else ("r", "l")
            _set_leg(ch, lp, ls, lead, 0.05, knee * (np.sin(ang) > 0))
            _set_leg(ch, tp, -ls, trail, 0.05, knee * (np.sin(ang) <= 0))
            ch["vel"][:, 0] = ls * 2.0 * leg * np.sin(ab) * rate * 0.8
        elif a == "march":
            for ss, pp, off in ((1.0, "l", 0.0), (-1.0, "r", np.pi)):
                up = np.maximum(0.0, np.sin(2 * np.pi * phi + off)) * amp
                _set_leg(ch, pp, ss, 0.04, 1.2 * up, 1.35 * up)
                _set_arm(ch, pp, ss, _REST_ARM[0], 0.9 * np.maximum(0.0, -np.sin(2 * np.pi * phi + off)) * amp, 0.5 + 0.6 * up)
        else:
            _gait(ch, sign * phi, sw, kg, ag, elbow, lean)
            if a != "turn":
                ch["vel"][:, 2] = sign * 4.0 * leg * np.sin(sw) * rate * 0.85
            if a in ("jog", "run"):
                ch["flight"] = (0.04 if a == "jog" else 0.07) * amp * np.maximum(0.0, np.abs(np.sin(2 * np.pi * phi)) - 0.5) * 2
        if a == "turn":
            angle = np.deg2rad(seg.turn_angle) * (1.0 if seg.direction == "left" else -1.0)
            ch["yaw_rate"] = angle * 6.0 * u * (1.0 - u) / dur
    elif a == "squat":
        k = 1.9 * min(amp, 1.15) * bump
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            _set_leg(ch, pp, ss, 0.12 * bump + 0.04, 0.6 * k, k)
            _set_arm(ch, pp, ss, _REST_ARM[0], 1.45 * bump + 0.04, 0.2)
        ch["pelvis_pitch"] = 0.5 * bump * amp
    elif a == "jump":
        # crouch [0, .35], flight [.35, .75], landing [.75, 1]
        crouch = np.where(frac < 0.35, np.sin(np.pi * frac / 0.35) ** 2, 0.0)
        land = np.where(frac >= 0.75, np.sin(np.pi * (frac - 0.75) / 0.25) ** 2 * 0.6, 0.0)
        air = (frac >= 0.35) & (frac < 0.75)
        xa = np.clip((frac - 0.35) / 0.4, 0, 1)
        ch["flight"] = np.where(air, 4 * xa * (1 - xa), 0.0) * 0.28 * amp
        c = crouch + land
        k = 1.3 * c * min(amp, 1.2) + 0.25 * air * np.sin(np.pi * xa)
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            foot = np.stack([np.full(n, ss * 0.12), -0.6 * air * np.sin(np.pi * xa), np.ones(n)], -1)
            _set_leg(ch, pp, ss, 0.05, 0.6 * k, k, foot)
            _set_arm(ch, pp, ss, 0.2, -0.7 * crouch + 2.4 * air * np.sin(np.pi * xa) * amp, 0.3)
        ch["pelvis_pitch"] = 0.4 * c
        dist = 0.6 * amp * subject_scale
        v = np.where(air, dist / (0.4 / max(rate, 1e-6)), 0.0)
        if seg.direction in ("forward", "backwards"):
            ch["vel"][:, 2] = v * (1.0 if seg.direction == "forward" else -1.0)
        elif seg.direction in ("left", "right"):
            ch["vel"][:, 0] = v * 0.7 * _SIDE[seg.direction]
    elif a == "jumping jacks":
        sj = (1 - np.cos(2 * np.pi * frac)) / 2
        hop = np.sin(2 * np.pi * frac) ** 2
        ch["flight"] = 0.07 * amp * hop * (phi < cycles)
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            _set_leg(ch, pp, ss, 0.04 + 0.24 * sj * amp, 0.0, 0.25 * hop)
            _set_arm(ch, pp, ss, _REST_ARM[0] + (2.75 - _REST_ARM[0]) * sj, 0.05, 0.1)
    elif a == "wave":
        theta = 0.25 + 0.45 * amp * np.sin(2 * np.pi * phi)
        abd = _REST_ARM[0] + (2.3 - _REST_ARM[0]) * e
        ch[f"{p}_upper"] = _limb(abd, 0.25 * e + _REST_ARM[1] * (1 - e), s)
        fabd = (_REST_ARM[0]) * (1 - e) + (np.pi - theta) * e
        ch[f"{p}_fore"] = _limb(fabd, (_REST_ARM[1] + _REST_ARM[2]) * (1 - e) - 0.25 * e, s)
        ch["neck_pitch"] = -0.1 * e
    elif a == "arm circles":
        r = 0.5 * amp
        ang = 2 * np.pi * phi
        sides = ((1.0, "l"), (-1.0, "r")) if seg.side == "both" else ((s, p),)
        for ss, pp in sides:
            circ = _normalize(np.stack([np.full(n, ss), r * np.sin(ang), r * np.cos(ang) - 0.15], -1))
            rest = _limb(_REST_ARM[0], _REST_ARM[1], ss)
            ch[f"{pp}_upper"] = _normalize((1 - e)[:, None] * rest + e[:, None] * circ)
            ch[f"{pp}_fore"] = ch[f"{pp}_upper"]
    elif a == "punch":
        xx = bump * e
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            g_abd, g_flex, g_elb = 0.3, 0.55, 2.0
            abd = _REST_ARM[0] * (1 - e) + g_abd * e
            flex = _REST_ARM[1] * (1 - e) + g_flex * e
            elb = _REST_ARM[2] * (1 - e) + g_elb * e
            if pp == p:
                abd, flex, elb = abd + (0.08 - g_abd) * xx, flex + (1.45 - g_flex) * xx * amp, elb + (0.05 - g_elb) * xx
            _set_arm(ch, pp, ss, abd, flex, elb)
        ch["spine_yaw"] = -s * 0.35 * xx
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            _set_leg(ch, pp, ss, 0.1 * e + 0.04, 0.15 * e, 0.3 * e)
    elif a == "kick":
        k_up = bump * min(amp, 1.2)
        ext = np.sin(np.pi * frac) ** 8
        knee = 1.5 * bump * (1 - 0.9 * ext) + 0.05
        if seg.direction == "side":
            _set_leg(ch, p, s, 0.04 + 1.15 * k_up, 0.15 * k_up, knee * 0.6)
            ch["spine_roll"] = s * 0.45 * k_up
        else:
            _set_leg(ch, p, s, 0.04, 1.45 * k_up, knee)
            ch["pelvis_pitch"] = -0.15 * k_up
        bb = (bump * ext)[:, None]
        ch[f"{p}_foot"] = _normalize((1 - bb) * np.array([s * 0.12, 0.0, 1.0]) + bb * ch[f"{p}_shank"] * 1.2)
        _set_leg(ch, q, -s, 0.04, 0.1 * bump, 0.2 * bump)
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            _set_arm(ch, pp, ss, 0.35 + 0.4 * bump, 0.3 * bump, 0.8)
    elif a == "lunge":
        sg = 1.0 if seg.direction != "backwards" else -1.0
        b = bump * min(amp, 1.2)
        # the labelled leg steps (forward or back); "front"/"back" by the final stance
        front, back = (p, q) if sg > 0 else (q, p)
        fs, bs = (_SIDE["left"] if front == "l" else _SIDE["right"]), (_SIDE["left"] if back == "l" else _SIDE["right"])
        _set_leg(ch, front, fs, 0.06, 1.25 * b, 1.4 * b)
        foot_b = _normalize(np.stack([np.full(n, bs * 0.12), -0.7 * b, np.ones(n)], -1))
        _set_leg(ch, back, bs, 0.06, -0.3 * b, 1.05 * b, foot_b)
        ch["pelvis_pitch"] = 0.1 * b
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            _set_arm(ch, pp, ss, 0.2 + 0.2 * b, 0.1, 0.3)
    elif a == "clap":
        c = (1 + np.cos(2 * np.pi * phi)) / 2  # 1 apart, 0 together
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            abd = _REST_ARM[0] * (1 - e) + (-0.12 + 0.65 * c * amp) * e
            flex = _REST_ARM[1] * (1 - e) + 1.25 * e
            ch[f"{pp}_upper"] = _limb(abd, flex, ss)
            ch[f"{pp}_fore"] = _limb(abd - 0.35 * e, flex + (_REST_ARM[2] * (1 - e) + 0.35 * e), ss)
    elif a == "bow":
        b = bump * min(amp, 1.2)
        ch["pelvis_pitch"] = 0.5 * b
        ch["spine_pitch"] = 0.6 * b
        ch["neck_pitch"] = 0.25 * b
    elif a in ("sit", "stand up"):
        sd = _smoothstep(u / 0.65) if a == "sit" else 1.0 - _smoothstep((u - 0.3) / 0.65)
        mid = np.sin(np.pi * np.clip(sd, 0, 1)) ** 2
        for ss, pp in ((1.0, "l"), (-1.0, "r")):
            _set_leg(ch, pp, ss, 0.08 + 0.08 * sd, 1.45 * sd, 1.5 * sd)
            _set_arm(ch, pp, ss, _REST_ARM[0] + 0.1 * sd, _REST_ARM[1] + 0.6 * sd + 0.5 * mid, _REST_ARM[2] + 0.6 * sd)
        ch["pelvis_pitch"] = 0.55 * mid + 0.1 * sd
    else:  # pragma: no cover - guarded by ACTIONS
        raise ValueError(f"unknown action {a!r}")
    return ch


# ----------------------------------------------------------------------------------------------
# channels -> SMPL rotations -> joints
# ----------------------------------------------------------------------------------------------

_DOWN = np.array([0.0, -1.0, 0.0])
_FWD = np.array([0.0, 0.0, 1.0])
_LEFT = np.array([1.0, 0.0, 0.0])


def _channels_to_rotations(ch) -> np.ndarray:
    """Local joint rotation matrices (T, 22, 3, 3); joint 0 without heading (the body frame)."""
    n = len(ch["flight"])
    rot = np.broadcast_to(np.eye(3), (n, NUM_JOINTS, 3, 3)).copy()
    pelvis = _rot_x(ch["pelvis_pitch"]) @ _rot_z(ch["pelvis_roll"])
    rot[:, 0] = pelvis
    spine = yaw_matrix(ch["spine_yaw"] / 3) @ _rot_z(ch["spine_roll"] / 3) @ _rot_x(ch["spine_pitch"] / 3)
    rot[:, 3] = rot[:, 6] = rot[:, 9] = spine
    rot[:, 12] = _rot_x(ch["neck_pitch"])
    pelvis_t = np.swapaxes(pelvis, -1, -2)
    for p, hip, knee, ankle in (("l", 1, 4, 7), ("r", 2, 5, 8)):
        g_thigh = _swing(_DOWN, ch[f"{p}_thigh"])
        g_shank = _swing(_DOWN, ch[f"{p}_shank"])
        g_foot = _swing(_FWD, ch[f"{p}_foot"])
        rot[:, hip] = pelvis_t @ g_thigh
        rot[:, knee] = np.swapaxes(g_thigh, -1, -2) @ g_shank
        rot[:, ankle] = np.swapaxes(g_shank, -1, -2) @ g_foot
    for p, sh, el, rest in (("l", 16, 18, _LEFT), ("r", 17, 19, -_LEFT)):
        g_up = _swing(rest, ch[f"{p}_upper"])
        rot[:, sh] = g_up
        rot[:, el] = np.swapaxes(g_up, -1, -2) @ _swing(rest, ch[f"{p}_fore"])
    return rot


def _segment_frames(spec: SequenceSpec) -> list[tuple[int, int, float]]:
    out, start = [], 0
    for seg in spec.segments:
        d = ACTIONS[seg.action]
        if seg.duration is not None:
            dur = seg.duration
        elif d.countable:
            dur = seg.count / (d.rate * seg.speed) + d.setup
        else:
            dur = 3.0
        n = max(8, round(dur * spec.fps))
        out.append((start, start + n, n / spec.fps))
        start += n
    return out


def _warp_fn(a, m):
    return lambda x: x + a * np.sin(2 * np.pi * m * x) / (2 * np.pi * m)


def generate_sequence(rng: np.random.Generator, spec: SequenceSpec) -> MotionSample:
    """Synthesise the motion of ``spec`` (timing jitter and noise drawn from ``rng``)."""
    frames = _segment_frames(spec)
    total = frames[-1][1]
    t = np.arange(total, dtype=float)
    subj = spec.subject
    # cross-faded channels
    weights, chans = [], []
    h = BLEND_FRAMES
    for i, (seg, (s0, s1, dur)) in enumerate(zip(spec.segments, frames)):
        warp = _warp_fn(rng.uniform(-0.3, 0.3), int(rng.integers(1, 3)))
        u = (t - s0) / max(s1 - s0 - 1, 1)
        chans.append(_act(seg, u, dur, warp, subj.scale))
        w = np.ones(total)
        if i > 0:
            w *= _smoothstep((t - (s0 - h)) / (2 * h))
        if i < len(frames) - 1:
            w *= _smoothstep(((s1 + h) - t) / (2 * h))
        weights.append(w)
    wsum = np.maximum(sum(weights), 1e-9)
    ch = {}
    for key in _SCALAR_CHANNELS + _VECTOR_CHANNELS:
        acc = sum((w[:, None] if c[key].ndim == 2 else w) * c[key] for w, c in zip(weights, chans))
        ch[key] = acc / (wsum[:, None] if acc.ndim == 2 else wsum)
    for key in _VECTOR_CHANNELS:
        if key != "vel":
            ch[key] = _normalize(ch[key])
    # rotations, subject posture and noise
    local = _channels_to_rotations(ch)
    posture = subj.posture if subj.posture is not None else np.zeros((NUM_JOINTS, 3))
    noise = _smooth_noise(rng, (total, NUM_JOINTS, 3)) * subj.noise + posture
    noise[:, [10, 11, 15, 20, 21]] = 0.0  # leaf joints move nothing
    local = local @ axis_angle_to_matrix(noise)
    heading = spec.heading + np.concatenate([[0.0], np.cumsum(ch["yaw_rate"][:-1])]) / spec.fps
    yaw = yaw_matrix(heading)
    local[:, 0] = yaw @ local[:, 0]
    # skeleton and FK with the pelvis at the origin, then ground contact and root path
    bone = subj.bone_scale if subj.bone_scale is not None else np.ones(NUM_JOINTS - 1)
    offsets = np.asarray(TEMPLATE_OFFSETS) * subj.scale
    offsets[1:] = offsets[1:] * bone[:, None]
    joints, _ = forward_kinematics(local, np.zeros((total, 3)), offsets)
    foot_y = joints[:, [7, 8, 10, 11], 1].min(axis=1)
    root_y = -foot_y + FOOT_CLEARANCE + ch["flight"]
    vel_world = np.einsum("tij,tj->ti", yaw, ch["vel"])
    xz = np.cumsum(vel_world, axis=0) / spec.fps - vel_world[0] / spec.fps
    root = np.stack([xz[:, 0] + spec.start[0], root_y, xz[:, 2] + spec.start[1]], axis=-1)
    joints = joints + root[:, None, :]
    rotations = matrix_to_axis_angle(local)
    segments = [_segment_label(seg, s0, s1, dur) for seg, (s0, s1, dur) in zip(spec.segments, frames)]
    return MotionSample(
        rotations=rotations.astype(np.float32),
        trans=root.astype(np.float32),
        joints=joints.astype(np.float32),
        offsets=offsets.astype(np.float32),
        fps=spec.fps,
        segments=segments,
        spec=spec,
    )


def _segment_label(seg: SegmentSpec, s0: int, s1: int, dur: float) -> dict:
    d = ACTIONS[seg.action]
    direction = seg.direction
    if direction == "side":
        direction = seg.side
    body_part = f"{seg.side} {d.part}" if d.sided and d.part and seg.side in ("left", "right") else None
    cycles = seg.count if d.countable else max(1.0, (dur - d.setup) * d.rate * seg.speed)
    return {
        "action": seg.action,
        "start_f": int(s0),
        "end_f": int(s1),
        "count": int(seg.count) if d.countable else None,
        "direction": direction,
        "body_part": body_part,
        "side": seg.side,
        "speed": round(float(d.rate * seg.speed), 4),
        "speed_factor": round(float(seg.speed), 4),
        "amplitude": round(float(seg.amplitude), 4),
        "cycles": round(float(cycles), 3),
        "turn_angle": float(seg.turn_angle) if seg.action == "turn" else None,
        "kick_style": seg.direction if seg.action == "kick" else None,
    }


# ----------------------------------------------------------------------------------------------
# sampling specs
# ----------------------------------------------------------------------------------------------


def _sample_subject(rng) -> SubjectSpec:
    scale = float(rng.uniform(0.85, 1.15))
    half = rng.normal(0.0, 0.035, NUM_JOINTS - 1)
    # left/right bones share a scale: bone j - 1 ends at joint j, the right one takes its left twin's
    bone = 1.0 + half
    for left, right in enumerate(MIRRORED_JOINTS):
        if left < right:
            bone[right - 1] = bone[left - 1]
    posture = rng.normal(0.0, 0.035, (NUM_JOINTS, 3))
    posture[0] = 0.0
    return SubjectSpec(scale=scale, bone_scale=bone, posture=posture, noise=float(rng.uniform(0.006, 0.018)))


def _sample_segment(rng, action: str, speed_range) -> SegmentSpec:
    d = ACTIONS[action]
    speed = float(rng.uniform(*speed_range))
    direction = d.directions[int(rng.integers(len(d.directions)))]
    side = None
    if d.sided:
        side = ("left", "right", "both")[int(rng.integers(3))] if action == "arm circles" else ("left", "right")[int(rng.integers(2))]
    seg = SegmentSpec(action=action, direction=direction, side=side, speed=speed, amplitude=float(rng.uniform(0.75, 1.25)))
    if d.countable:
        max_count = max(1, min(d.max_count, int(12.0 * d.rate * speed)))
        seg.count = int(rng.integers(1, max_count + 1))
    else:
        seg.duration = float(rng.uniform(*d.duration))
        seg.count = 1
    if action == "turn":
        seg.turn_angle = float((90.0, 180.0)[int(rng.integers(2))])
    return seg


def _sample_actions(rng, max_segments: int, forbidden_pairs: set, required_pair=None) -> list[str]:
    """Action names, sit always followed by stand up and stand up only after sit."""
    free = [a for a in ACTION_NAMES if a != "stand up"]
    for _ in range(1000):
        if required_pair is not None:
            seq = list(required_pair)
            if len(seq) < max_segments and rng.random() < 0.5:
                extra = free[int(rng.integers(len(free)))]
                seq = seq + [extra] if rng.random() < 0.5 else [extra] + seq
        else:
            n = int(rng.integers(1, max_segments + 1))
            seq = [free[int(rng.integers(len(free)))] for _ in range(n)]
        out = []
        for a in seq:
            if a == "stand up" and (not out or out[-1] != "sit"):
                out.append("sit")
            out.append(a)
            if a == "sit":
                out.append("stand up")
        # collapse duplicates created by the sit/stand-up rule
        fixed = []
        for a in out:
            if fixed and a == "stand up" and fixed[-1] == "stand up":
                continue
            if fixed and a == "sit" and fixed[-1] == "sit":
                continue
            fixed.append(a)
        if len(fixed) > max(max_segments, 2 if "sit" in fixed else 0):
            continue
        pairs = set(itertools.pairwise(fixed))
        if required_pair is None and pairs & forbidden_pairs:
            continue
        if required_pair is not None and tuple(required_pair) not in pairs:
            continue
        return fixed
    raise RuntimeError("could not sample an action sequence")  # pragma: no cover


def heldout_pairs(seed: int, fraction: float = 0.1) -> list[tuple[str, str]]:
    """The ordered consecutive action pairs reserved for the heldout split (deterministic per seed)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 - 1,)))
    pairs = [
        (a, b)
        for a in ACTION_NAMES
        for b in ACTION_NAMES
        if a != b and a != "sit" and b != "stand up"  # sit->stand up is forced, never held out
    ]
    k = max(1, round(fraction * len(pairs)))
    idx = rng.choice(len(pairs), size=k, replace=False)
    return sorted(pairs[i] for i in idx)


def sample_spec(rng: np.random.Generator, max_segments: int = 3, heldout: str | None = None, forbidden_pairs=(), heldout_pair_list=()) -> SequenceSpec:
    """A random :class:`SequenceSpec`.

    ``heldout``: None (a spec with no held-out pair and no held-out speed), ``"combination"`` (contains
    one of ``heldout_pair_list``) or ``"speed"`` (one segment's speed factor in HELDOUT_SPEED_RANGE).
    """
    forbidden = set(map(tuple, forbidden_pairs))
    required = None
    if heldout == "combination":
        pl = list(heldout_pair_list)
        required = pl[int(rng.integers(len(pl)))]
    actions = _sample_actions(rng, max_segments, forbidden, required)
    segs = [_sample_segment(rng, a, SPEED_RANGE) for a in actions]
    if heldout == "speed":
        i = int(rng.integers(len(segs)))
        segs[i] = _sample_segment(rng, actions[i], HELDOUT_SPEED_RANGE)
    return SequenceSpec(
        segments=segs,
        subject=_sample_subject(rng),
        heading=float(rng.uniform(-np.pi, np.pi)),
        start=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))),
    )


# ----------------------------------------------------------------------------------------------
# label checks (used by tests)
# ----------------------------------------------------------------------------------------------


def _count_peaks(x, prominence: float) -> int:
    """Peaks of ``x`` that rise at least ``prominence`` above the trough before and after them."""
    count, rising, ref = 0, False, x[0]
    for v in x[1:]:
        if not rising:
            if v < ref:
                ref = v
            elif v - ref >= prominence:
                rising, ref = True, v
        elif v > ref:
            ref = v
        elif ref - v >= prominence:
            count, rising, ref = count + 1, False, v
    return count


def count_minima(signal, prominence: float = 0.08) -> int:
    """Local minima of a 1-D signal that are at least ``prominence`` below the maxima on both sides
    (a signal starting or ending low counts its end trough if it rises ``prominence`` after it)."""
    x = -np.asarray(signal, float)
    padded = np.concatenate([[x.min()], x, [x.min()]])
    return _count_peaks(padded, prominence)


def count_maxima(signal, prominence: float = 0.08) -> int:
    """Local maxima at least ``prominence`` above the minima on both sides (see :func:`count_minima`)."""
    return count_minima(-np.asarray(signal, float), prominence)


def count_airborne(joints, threshold: float = 0.1) -> int:
    """Number of separate intervals where every foot joint is ``threshold`` m above its contact height."""
    feet = np.asarray(joints)[:, [7, 8, 10, 11], 1].min(axis=1)
    up = feet > FOOT_CLEARANCE + threshold
    return int(np.count_nonzero(up[1:] & ~up[:-1]) + int(up[0]))


# ----------------------------------------------------------------------------------------------
# questions
# ----------------------------------------------------------------------------------------------

_QUERY_TEXT = {
    "action": "What action does the person do",
    "direction": "What direction does the person move",
    "body_part": "What body part does the person use",
}
_FILTER_TEXT = {"action": "they #", "direction": "they move #", "body_part": "they use their #"}


def segment_concepts(segment: dict) -> dict:
    """BABEL-QA ``attributes`` of a segment label."""
    attrs = {"action": [segment["action"]]}
    if segment.get("direction"):
        attrs["direction"] = [segment["direction"]]
    if segment.get("body_part"):
        attrs["body_part"] = [segment["body_part"]]
    return attrs


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _phrase(seg: dict) -> str:
    a, n, side, d = seg["action"], seg.get("count") or 1, seg.get("side"), seg.get("direction")
    where = {"forward": "forward", "backwards": "backwards", "left": "to the left", "right": "to the right", None: ""}
    speed = seg.get("speed_factor", 1.0)
    adverb = " slowly" if speed < 0.8 else (" quickly" if speed > 1.2 else "")
    if a in ("walk", "jog", "run"):
        text = f"{a}s {where[d]}".strip()
        if a == "run":
            text = f"runs {where[d]}".strip()
    elif a == "march":
        text = "marches in place"
    elif a == "turn":
        text = f"turns around to the {d}" if (seg.get("turn_angle") or 90) >= 180 else f"turns {d}"
    elif a == "jump":
        text = f"jumps {where[d] or 'in place'} {_times(n)}"
    elif a == "squat":
        text = f"squats {_times(n)}"
    elif a == "jumping jacks":
        text = f"does {n} jumping jack{'s' if n > 1 else ''}"
    elif a == "wave":
        text = f"waves their {side} hand {_times(n)}"
    elif a == "arm circles":
        arms = "both arms" if side == "both" else f"their {side} arm"
        text = f"makes {n} arm circle{'s' if n > 1 else ''} with {arms}"
    elif a == "kick":
        style = " to the side" if seg.get("kick_style") == "side" else ""
        text = f"kicks{style} with their {side} foot {_times(n)}"
    elif a == "punch":
        text = f"punches with their {side} arm {_times(n)}"
    elif a == "lunge":
        kind = "backward" if d == "backwards" else "forward"
        text = f"does {n} {kind} lunge{'s' if n > 1 else ''} with their {side} leg"
    elif a == "clap":
        text = f"claps {_times(n)}"
    elif a == "bow":
        text = f"bows {_times(n)}"
    elif a == "sit":
        text = "sits down"
    else:
        text = "stands up"
    return text + adverb


def describe(segments: list[dict]) -> str:
    """Free-text description listing the actions in order."""
    parts = [_phrase(s) for s in segments]
    if len(parts) == 1:
        body = parts[0]
    elif len(parts) == 2:
        body = f"{parts[0]}, then {parts[1]}"
    else:
        body = ", then ".join(parts[:-1]) + f", and finally {parts[-1]}"
    return f"The person {body}."


def make_questions(sample: MotionSample | list[dict], rng: np.random.Generator | None = None, babel_id: str = "", max_questions: int | None = None) -> list[dict]:
    """BABEL-QA questions (action / direction / body part with no relation, before, after, in between),
    counting questions and one description for a sample (or its list of segment labels).

    Follows BABEL-QA's generator: a filter concept must occur once in the sequence; the queried segment
    is the filter segment (``no_relation``, never asking back the filtered concept), the one before or
    after it, or the one between two filters (``in_between``). Questions get no ids (the suite numbers
    them); ``rng`` (optional) subsamples to ``max_questions``, keeping the description.
    """
    segments = sample.segments if isinstance(sample, MotionSample) else sample
    concepts = [segment_concepts(s) for s in segments]
    counts: dict = {}
    for c in concepts:
        for attr, values in c.items():
            for v in values:
                counts[(attr, v)] = counts.get((attr, v), 0) + 1
    out, seen = [], set()

    def add(q):
        if q["question"] in seen:
            return
        seen.add(q["question"])
        q["babel_id"] = babel_id
        out.append(q)

    def ftext(attr, v):
        return _FILTER_TEXT[attr].replace("#", v)

    n = len(concepts)
    for i, ci in enumerate(concepts):
        for fattr, fvals in ci.items():
            for fv in fvals:
                if counts[(fattr, fv)] > 1:
                    continue
                base = [{"inputs": [], "function": "scene", "value_inputs": []}, {"inputs": [0], "function": f"filter_{fattr}", "value_inputs": [fv]}]
                # no relation
                for qattr, qvals in ci.items():
                    for qv in qvals:
                        if qv == fv:
                            continue
                        add({
                            "question": f"{_QUERY_TEXT[qattr]} while {ftext(fattr, fv)}?", "answer": qv,
                            "query_type": f"query_{qattr}", "relation_type": "no_relation",
                            "program": base + [{"inputs": [1], "function": f"query_{qattr}", "value_inputs": []}],
                            "filter_answer_0": i,
                        })  # fmt: skip
                for j, rel in ((i - 1, "before"), (i + 1, "after")):
                    if not 0 <= j < n:
                        continue
                    prog = base + [{"inputs": [1], "function": "relate", "value_inputs": [rel]}]
                    tail = f"{rel} {ftext(fattr, fv)}"
                    for qattr, qvals in concepts[j].items():
                        for qv in qvals:
                            add({
                                "question": f"{_QUERY_TEXT[qattr]} {tail}?", "answer": qv,
                                "query_type": f"query_{qattr}", "relation_type": rel,
                                "program": prog + [{"inputs": [2], "function": f"query_{qattr}", "value_inputs": []}],
                                "filter_answer_0": i,
                            })  # fmt: skip
                    k, rel2 = (j - 1, "after") if rel == "before" else (j + 1, "before")
                    if not 0 <= k < n:
                        continue
                    for f2attr, f2vals in concepts[k].items():
                        for f2 in f2vals:
                            if counts[(f2attr, f2)] > 1:
                                continue
                            prog2 = prog + [
                                {"inputs": [0], "function": f"filter_{f2attr}", "value_inputs": [f2]},
                                {"inputs": [3], "function": "relate", "value_inputs": [rel2]},
                                {"inputs": [2, 4], "function": "intersect", "value_inputs": []},
                            ]
                            for qattr, qvals in concepts[j].items():
                                for qv in qvals:
                                    add({
                                        "question": f"{_QUERY_TEXT[qattr]} {tail} and {rel2} {ftext(f2attr, f2)}?",
                                        "answer": qv, "query_type": f"query_{qattr}", "relation_type": "in_between",
                                        "program": prog2 + [{"inputs": [5], "function": f"query_{qattr}", "value_inputs": []}],
                                        "filter_answer_0": i, "filter_answer_1": k,
                                    })  # fmt: skip
    # counting
    action_counts: dict = {}
    for s in segments:
        action_counts[s["action"]] = action_counts.get(s["action"], 0) + 1
    for i, s in enumerate(segments):
        d = ACTIONS.get(s["action"])
        if d is None or not d.countable or action_counts[s["action"]] > 1:
            continue
        add({
            "question": f"How many times does the person {d.verb}?", "answer": str(int(s["count"])),
            "query_type": "query_count", "relation_type": "no_relation",
            "program": [{"inputs": [], "function": "scene", "value_inputs": []},
                        {"inputs": [0], "function": "filter_action", "value_inputs": [s["action"]]},
                        {"inputs": [1], "function": "query_count", "value_inputs": []}],
            "filter_answer_0": i,
        })  # fmt: skip
    caption = {
        "question": "Describe the motion of the person.", "answer": describe(segments),
        "query_type": "query_description", "relation_type": "no_relation",
        "program": [{"inputs": [], "function": "scene", "value_inputs": []},
                    {"inputs": [0], "function": "query_description", "value_inputs": []}],
    }  # fmt: skip
    if rng is not None and max_questions is not None and len(out) >= max_questions:
        keep = np.sort(rng.choice(len(out), size=max(0, max_questions - 1), replace=False))
        out = [out[i] for i in keep]
    add(caption)
    return out


# ----------------------------------------------------------------------------------------------
# on-disk formats
# ----------------------------------------------------------------------------------------------

#: Y-up -> Z-up, ``(x, y, z) -> (x, -z, y)``: a proper rotation (+90 degrees about x).
Y_TO_Z = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def babel_joints(joints_y_up: np.ndarray) -> np.ndarray:
    """Joints (T, 22, 3) Y-up -> BABEL-QA ``joints.npy`` convention (NSPose): Z-up, first-frame pelvis at
    x = y = 0, rotated about z so the first frame's right-minus-left hip vector is +x; floor kept at 0."""
    j = np.asarray(joints_y_up, float) @ Y_TO_Z.T
    j[..., :2] -= j[0, 0, :2]
    right = j[0, 2, :2] - j[0, 1, :2]
    ang = np.arctan2(right[1], right[0])
    c, s = np.cos(-ang), np.sin(-ang)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return (j @ rz.T).astype(np.float32)


def to_amass(sample: MotionSample) -> dict[str, np.ndarray]:
    """AMASS-style (SMPL-H, Z-up) arrays for ``pose.npz``; see the module docstring."""
    t = sample.num_frames
    root = axis_angle_to_matrix(sample.rotations[:, 0].astype(np.float64))
    root_z = matrix_to_axis_angle(Y_TO_Z @ root)
    body = sample.rotations[:, 1:].reshape(t, -1).astype(np.float64)
    poses = np.zeros((t, 156))
    poses[:, :3] = root_z
    poses[:, 3:66] = body
    trans = sample.trans.astype(np.float64) @ Y_TO_Z.T
    return {
        "poses": poses.astype(np.float32),
        "trans": trans.astype(np.float32),
        "mocap_framerate": np.array(sample.fps),
        "fps": np.array(sample.fps),
        "betas": np.zeros(16, np.float32),
        "gender": np.array("neutral"),
        "root_orient": root_z.astype(np.float32),
        "pose_body": body.astype(np.float32),
        "pose_hand": np.zeros((t, 90), np.float32),
        "skeleton_offsets": sample.offsets.astype(np.float32),
    }


@dataclass
class BabelQAItem:
    """One question of the suite or of real BABEL-QA, with the paths of its motion (and video)."""

    question_id: str
    babel_id: str
    question: str
    answer: str
    query_type: str
    relation_type: str
    split: str | None
    motion_path: str  # joints.npy (Z-up, BABEL-QA convention)
    pose_path: str | None  # pose.npz when present
    video_path: str | None
    segments: list | None = None  # motion_concepts.json entry when present
    filter_segments: tuple = ()
    fps: float = FPS
    up_axis: str = "z"  # of joints.npy (BABEL-QA's convention); pass it to load_motion(..., up_axis=...)
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def relation(self) -> str:
        return self.relation_type


def suite_has_videos(root: str | os.PathLike) -> bool:
    """Whether a suite folder was generated with rendered videos (``render_videos=True``)."""
    path = os.path.join(os.fspath(root), "metadata.json")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return bool(json.load(f).get("config", {}).get("render_videos"))


# the segment a question asks about, from the segment its filter picks (questions.json's `filter_answer_0`)
_ASKED_OFFSET = {"no_relation": 0, "before": -1, "after": 1}


def _read_json(root, name):
    with open(os.path.join(os.fspath(root), name), encoding="utf-8") as handle:
        return json.load(handle)


def question_segments(root: str | os.PathLike) -> dict[str, dict]:
    """Question id -> `{"segments": its clip's segments (motion_concepts.json), "asked": the index of the segment
    whose attribute the question asks for, "named": the indices of the segments its filter names, "relation":
    no_relation / before / after / in_between}`, for the questions of a BABEL-QA-layout folder that filter on a
    segment. The asked segment is the named one itself, the one before or after it, or the one in between two
    (`filter_answer_0` and `filter_answer_1`)."""
    questions = _read_json(root, "questions.json")
    segments = _read_json(root, "motion_concepts.json")
    found = {}
    for question_id, question in questions.items():
        first, relation = question.get("filter_answer_0"), question["relation_type"]
        if first is None:
            continue
        if relation == "in_between":  # the segment between the two filtered ones
            named = [first, question["filter_answer_1"]]
            asked = sum(named) // 2
        else:
            named, asked = [first], first + _ASKED_OFFSET[relation]
        found[question_id] = {"segments": segments[question["babel_id"]], "asked": asked, "named": named,
                              "relation": relation}
    return found


def suite_fps(root: str | os.PathLike, default: float = 30.0) -> float:
    """The frame rate of a BABEL-QA-layout folder's frame numbers (motion_concepts.json): metadata.json's `fps`, else
    `default` (the real benchmark's joints are at 30 fps)."""
    if not os.path.isfile(os.path.join(os.fspath(root), "metadata.json")):
        return float(default)
    return float(_read_json(root, "metadata.json").get("fps", default))


def question_focus_seconds(root: str | os.PathLike, fps: float | None = None,
                           asked_only: bool = False) -> dict[str, list[list[float]]]:
    """Question id -> the `[start, end)` spans, in seconds of its motion, of the segments the question is about:
    the one it asks about and the one(s) its filter names (a question about what comes after the squats needs
    both); with `asked_only`, the asked one alone (the stretch whose attribute or count is the answer). The frame
    rate of motion_concepts.json's frame numbers is `fps`, else metadata.json's, else 30."""
    fps = suite_fps(root) if fps is None else fps
    focus = {}
    for question_id, found in question_segments(root).items():
        chosen = [found["asked"]] if asked_only else sorted({found["asked"], *found["named"]})
        focus[question_id] = [[found["segments"][i]["start_f"] / fps, found["segments"][i]["end_f"] / fps]
                              for i in chosen]
    return focus


def load_babel_qa(root: str | os.PathLike, split: str | None = None, split_file: str | os.PathLike | None = None) -> list[BabelQAItem]:
    """Read a BABEL-QA-layout folder (the real benchmark or this suite) into :class:`BabelQAItem` s.

    The one reader of the layout: training (:mod:`llamo.data.adapters`) and evaluation
    (:func:`llamo.evaluation.harness.load_babel_qa`, which adds the benchmark's strict checks) both go through it.

    ``split``: ``train``/``val``/``test`` (``heldout`` for this suite) or None for all questions. The
    split comes from ``split_file`` if given, else ``<root>/split_question_ids.json`` when present (real
    BABEL-QA ships it beside the generator as ``split_question_ids.json``), else each question's
    ``split`` field. A split listed in the split file comes back in the file's order; an id there that
    ``questions.json`` lacks raises ``KeyError``.
    """
    root = os.fspath(root)
    with open(os.path.join(root, "questions.json")) as f:
        questions = json.load(f)
    concepts = {}
    cpath = os.path.join(root, "motion_concepts.json")
    if os.path.isfile(cpath):
        with open(cpath) as f:
            concepts = json.load(f)
    split_ids: dict[str, list[str]] = {}
    spath = os.fspath(split_file) if split_file is not None else os.path.join(root, "split_question_ids.json")
    if os.path.isfile(spath):
        with open(spath) as f:
            split_ids = {name: [str(qid) for qid in ids] for name, ids in json.load(f).items()}
    split_of = {qid: name for name, ids in split_ids.items() for qid in ids}
    if split is not None and split in split_ids:
        for qid in split_ids[split]:
            if qid not in questions:
                raise KeyError(f"Question {qid} of split {split!r} ({spath}) is not in {root}/questions.json.")
        selected = [(qid, questions[qid]) for qid in split_ids[split]]
    else:
        selected = [(qid, q) for qid, q in questions.items() if split is None or split_of.get(str(qid), q.get("split")) == split]
    items = []
    for qid, q in selected:
        s = split_of.get(str(qid), q.get("split"))
        bid = str(q["babel_id"])
        folder = os.path.join(root, "motion_sequences", bid)
        pose = os.path.join(folder, "pose.npz")
        video = next((os.path.join(folder, f"video.{e}") for e in ("mp4", "webm", "gif") if os.path.isfile(os.path.join(folder, f"video.{e}"))), None)
        filters = tuple(q[k] for k in ("filter_answer_0", "filter_answer_1") if k in q)
        items.append(
            BabelQAItem(
                question_id=str(q.get("question_id", qid)), babel_id=bid, question=q["question"], answer=str(q["answer"]),
                query_type=q["query_type"], relation_type=q.get("relation_type", "no_relation"), split=s,
                motion_path=os.path.join(folder, "joints.npy"), pose_path=pose if os.path.isfile(pose) else None,
                video_path=video, segments=concepts.get(bid), filter_segments=filters, raw=q,
            )
        )  # fmt: skip
    return items


# ----------------------------------------------------------------------------------------------
# the suite
# ----------------------------------------------------------------------------------------------


def _sequence_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _build_one(args) -> dict:
    """Generate, write and (optionally) render sequence ``index``; returns its record."""
    (index, seed, root, held_pairs, cfg) = args
    rng = _sequence_rng(seed, index)
    r = rng.random()
    if r < cfg["heldout_fraction"]:
        kind = "combination" if rng.random() < 0.5 else "speed"
        split = "heldout"
    else:
        kind = None
        v = rng.random()
        tr, va, _ = cfg["split_fractions"]
        split = "train" if v < tr else ("val" if v < tr + va else "test")
    spec = sample_spec(rng, cfg["max_segments"], heldout=kind, forbidden_pairs=held_pairs, heldout_pair_list=held_pairs)
    sample = generate_sequence(rng, spec)
    bid = f"{index:06d}"
    questions = make_questions(sample, rng, babel_id=bid, max_questions=cfg["max_questions"])
    folder = os.path.join(root, "motion_sequences", bid)
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "joints.npy"), babel_joints(sample.joints))
    np.savez_compressed(os.path.join(folder, "pose.npz"), **to_amass(sample))
    camera = None
    if cfg["render_videos"]:
        from .render import random_camera, random_style, render_motion, write_video

        rrng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, 1)))
        camera, style = random_camera(rrng), random_style(rrng)
        frames = render_motion(sample.joints, camera=camera, style=style, size=cfg["image_size"], supersample=cfg["supersample"])
        write_video(frames, os.path.join(folder, f"video.{cfg['video_format']}"), fps=sample.fps)
        camera = dataclasses.asdict(camera)
    return {
        "babel_id": bid,
        "split": split,
        "heldout": kind,
        "num_frames": sample.num_frames,
        "fps": sample.fps,
        "segments": sample.segments,
        "caption": describe(sample.segments),
        "subject_scale": spec.subject.scale,
        "camera": camera,
        "questions": questions,
    }


def generate_suite(
    output_dir: str | os.PathLike,
    num_sequences: int = 64,
    seed: int = 0,
    render_videos: bool = True,
    video_format: str = "mp4",
    image_size: int = 224,
    supersample: int = 1,
    max_segments: int = 3,
    heldout_fraction: float = 0.15,
    split_fractions: tuple = (0.7, 0.15, 0.15),
    heldout_pair_fraction: float = 0.1,
    max_questions: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> dict:
    """Generate the suite into ``output_dir`` (BABEL-QA layout, see module docstring); returns a summary.

    ``num_workers > 1`` generates sequences in worker processes; the result is identical.
    """
    root = os.fspath(output_dir)
    os.makedirs(os.path.join(root, "motion_sequences"), exist_ok=True)
    held_pairs = heldout_pairs(seed, heldout_pair_fraction)
    cfg = {
        "heldout_fraction": heldout_fraction, "split_fractions": tuple(split_fractions), "max_segments": max_segments,
        "max_questions": max_questions, "render_videos": render_videos, "video_format": video_format, "image_size": image_size,
        "supersample": supersample,
    }  # fmt: skip
    jobs = [(i, seed, root, held_pairs, cfg) for i in range(num_sequences)]
    if num_workers and num_workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(num_workers) as pool:
            it = pool.map(_build_one, jobs, chunksize=4)
            records = list(_progress(it, num_sequences, progress))
    else:
        records = list(_progress(map(_build_one, jobs), num_sequences, progress))
    questions, splits, concepts_out, meta_seqs = {}, {"train": [], "val": [], "test": [], "heldout": []}, {}, {}
    for rec in records:
        for q in rec.pop("questions"):
            qid = f"{len(questions):06d}"
            q["question_id"] = qid
            q["split"] = rec["split"]
            questions[qid] = q
            splits[rec["split"]].append(qid)
        concepts_out[rec["babel_id"]] = [
            {"start_f": s["start_f"], "end_f": s["end_f"], "attributes": segment_concepts(s), **{k: v for k, v in s.items() if k not in ("start_f", "end_f")}}
            for s in rec["segments"]
        ]
        meta_seqs[rec["babel_id"]] = {k: v for k, v in rec.items() if k != "segments"}
    with open(os.path.join(root, "questions.json"), "w") as f:
        json.dump(questions, f, indent=1)
    with open(os.path.join(root, "split_question_ids.json"), "w") as f:
        json.dump(splits, f, indent=1)
    with open(os.path.join(root, "motion_concepts.json"), "w") as f:
        json.dump(concepts_out, f, indent=1)
    qtypes: dict = {}
    for q in questions.values():
        key = f"{q['query_type']}/{q['relation_type']}"
        qtypes[key] = qtypes.get(key, 0) + 1
    seq_splits: dict = {}
    for rec in meta_seqs.values():
        seq_splits[rec["split"]] = seq_splits.get(rec["split"], 0) + 1
    summary = {
        "root": root,
        "seed": seed,
        "num_sequences": num_sequences,
        "num_questions": len(questions),
        "sequences_per_split": seq_splits,
        "questions_per_split": {k: len(v) for k, v in splits.items()},
        "questions_per_type": dict(sorted(qtypes.items())),
        "num_frames": int(sum(r["num_frames"] for r in meta_seqs.values())),
    }
    metadata = {
        "summary": summary,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "fps": FPS,
        "coordinates": {"joints.npy": "Z-up, BABEL-QA/NSPose canonical", "pose.npz": "Z-up AMASS (SMPL-H poses)"},
        "actions": list(ACTION_NAMES),
        "countable_actions": list(COUNTABLE_ACTIONS),
        "body_parts": list(BABEL_QA_BODY_PARTS),
        "directions": list(BABEL_QA_DIRECTIONS),
        "speed_range": list(SPEED_RANGE),
        "heldout_speed_range": list(HELDOUT_SPEED_RANGE),
        "heldout_pairs": [list(p) for p in held_pairs],
        "sequences": meta_seqs,
    }
    with open(os.path.join(root, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=1)
    return summary


def _progress(iterable, total, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    return tqdm(iterable, total=total, desc="motion-QA", unit="seq")
