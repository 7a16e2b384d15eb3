"""Report figures (matplotlib, Agg backend): per-type accuracy bars, predicted-vs-true counts, key frames.

`plot_key_frames` shows what the Cross Talker picked for one item: a strip of stick-figure poses at the selected
key frames (front view, SMPL 22-joint skeleton), joint speed and root height over time with the key frames
marked, and the frame scores (E6, `s_j = max_i A_ij`) over time.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SMPL22_PARENTS",
    "plot_accuracy_by_type",
    "plot_counts_scatter",
    "plot_judge_scores",
    "plot_key_frames",
]

# SMPL joint order, first 22 joints (pelvis, L/R hip, spine1, L/R knee, spine2, L/R ankle, spine3, L/R foot, neck,
# L/R collar, head, L/R shoulder, L/R elbow, L/R wrist) and each joint's parent.
SMPL22_PARENTS = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
)
_LEFT = {1, 4, 7, 10, 13, 16, 18, 20}
_RIGHT = {2, 5, 8, 11, 14, 17, 19, 21}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label(name: str) -> str:
    return name.replace("query_", "").replace("_", " ")


def plot_accuracy_by_type(groups: dict[str, dict[str, dict]], path, title: str = "Accuracy") -> str:
    """Bar charts of accuracy, one panel per grouping, e.g. {"query type": by_query_type, "relation": by_relation}
    where each value maps group -> {"accuracy", "correct", "total"}."""
    plt = _pyplot()
    panels = [(name, rows) for name, rows in groups.items() if rows]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.8), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        labels = [_label(k) for k in rows]
        values = [rows[k]["accuracy"] for k in rows]
        bars = ax.bar(range(len(values)), values, color="#4C72B0")
        for bar, key in zip(bars, rows):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height() + 0.02,
                f"{rows[key]['accuracy']:.2f}\n({rows[key]['correct']}/{rows[key]['total']})",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, rotation=20, ha="right")
        ax.set_ylim(0, 1.2)
        ax.set_ylabel("accuracy")
        ax.set_title(f"by {name}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_counts_scatter(predictions, targets, path, title: str = "Predicted vs true counts") -> str:
    """Scatter of predicted vs true counts with the diagonal and the +-1 band; unparsed predictions as crosses
    on the x axis."""
    plt = _pyplot()
    targets = np.asarray(targets, dtype=float)
    parsed = np.array([p is not None for p in predictions], dtype=bool)
    preds = np.array([p if p is not None else 0 for p in predictions], dtype=float)
    top = max([1.0] + list(targets) + list(preds[parsed])) + 1
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    line = np.array([0, top])
    ax.fill_between(line, line - 1, line + 1, color="#55A868", alpha=0.15, label="within one (OBO)")
    ax.plot(line, line, color="#55A868", lw=1, label="exact (OBZ)")
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.12, 0.12, size=(2, len(targets)))
    ax.scatter(
        targets[parsed] + jitter[0, parsed],
        preds[parsed] + jitter[1, parsed],
        s=18,
        alpha=0.7,
        color="#4C72B0",
        label="prediction",
    )
    if (~parsed).any():
        ax.scatter(
            targets[~parsed],
            np.zeros((~parsed).sum()),
            marker="x",
            color="#C44E52",
            label="unparsed",
        )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("true count")
    ax.set_ylabel("predicted count")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_judge_scores(scores, path, title: str = "Judge scores") -> str:
    """Histogram of the judge's 0-5 scores."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.hist(
        np.asarray(scores, dtype=float),
        bins=np.arange(-0.5, 6.0, 1.0),
        color="#4C72B0",
        rwidth=0.85,
    )
    ax.set_xlabel("score")
    ax.set_ylabel("items")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _up_axis(joints: np.ndarray) -> int:
    """The axis along which the head sits highest above the feet, on average (Z-up AMASS, Y-up HumanML3D)."""
    if joints.shape[1] > 15:
        spread = joints[:, 15, :] - joints[:, [10, 11], :].mean(axis=1)
        return int(np.argmax(np.abs(spread.mean(axis=0))))
    return int(np.argmax(np.ptp(joints.reshape(-1, 3), axis=0)))


def _load_joints(joints_or_motion) -> np.ndarray:
    if isinstance(joints_or_motion, (str, bytes)) or hasattr(joints_or_motion, "__fspath__"):
        joints = np.load(joints_or_motion, allow_pickle=False)
    elif hasattr(joints_or_motion, "detach"):
        joints = joints_or_motion.detach().cpu().numpy()
    else:
        joints = np.asarray(joints_or_motion)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"plot_key_frames needs joint positions (T, J, 3), got shape {joints.shape}.")
    return joints.astype(np.float64)


def plot_key_frames(
    joints_or_motion,
    frame_scores,
    key_frame_indices,
    path,
    fps: float = 30.0,
    title: str | None = None,
    max_poses: int = 8,
    coverage_frame_indices=None,
) -> str:
    """Picture of one motion with its selected key frames.

    Args:
        joints_or_motion: joint positions (T, J, 3) as array/tensor or a `.npy` path (SMPL joint order when
            J >= 22; the up axis is detected). `frame_scores` (T',) and `key_frame_indices` (K,) index the
            model's timeline; when T' != T they are mapped onto the joints' frames proportionally.
            `frame_scores` may be None (only the key frames are drawn).
        path: output PNG. fps: frame rate of the joints, for the time axis. max_poses: at most this many
            stick figures in the strip (evenly chosen among the key frames).
        coverage_frame_indices: those of the key frames that are evenly spaced whatever the question
            (`num_coverage_frames`), drawn in grey so the question's own picks stand out.
    """
    plt = _pyplot()
    joints = _load_joints(joints_or_motion)
    num_frames = joints.shape[0]
    keys = np.asarray(key_frame_indices if key_frame_indices is not None else [], dtype=float).reshape(-1)
    scores = None if frame_scores is None else np.asarray(frame_scores, dtype=float).reshape(-1)
    timeline = len(scores) if scores is not None and len(scores) else num_frames
    scale = (num_frames - 1) / max(timeline - 1, 1) if timeline != num_frames else 1.0
    key_frames = np.clip(np.round(keys * scale).astype(int), 0, num_frames - 1)
    evenly_spaced = np.isin(keys, np.asarray(coverage_frame_indices if coverage_frame_indices is not None else []))
    key_colors = np.where(evenly_spaced, "#999999", "#55A868")
    times = np.arange(num_frames) / fps

    up = _up_axis(joints)
    horizontal = [a for a in range(3) if a != up]
    # front view: the horizontal axis with the larger spread between left and right hips is the lateral one
    if joints.shape[1] > 2:
        lateral = np.abs((joints[:, 1] - joints[:, 2]).mean(axis=0))
        side_axis = max(horizontal, key=lambda a: lateral[a])
    else:
        side_axis = horizontal[0]
    height = joints[:, 0, up] - joints[:, :, up].min()
    speed = np.zeros(num_frames)
    if num_frames > 1:
        speed[1:] = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=1) * fps

    fig = plt.figure(figsize=(11, 7.2))
    grid = fig.add_gridspec(3, 1, height_ratios=[1.5, 1, 1], hspace=0.45)
    strip = fig.add_subplot(grid[0])
    shown = (
        key_frames
        if len(key_frames) <= max_poses
        else key_frames[np.linspace(0, len(key_frames) - 1, max_poses).round().astype(int)]
    )
    shown = list(dict.fromkeys(int(f) for f in shown)) or [
        0,
        num_frames // 2,
        num_frames - 1,
    ]
    width = max(float(np.ptp(joints[:, :, side_axis], axis=1).max()), 0.5) * 1.6  # room per figure
    parents = SMPL22_PARENTS if joints.shape[1] >= 22 else None
    for slot, frame in enumerate(shown):
        pose = joints[frame]
        x = pose[:, side_axis] - pose[0, side_axis] + slot * width
        y = pose[:, up] - joints[:, :, up].min()
        if parents is not None:
            for j, p in enumerate(parents[: pose.shape[0]]):
                if p < 0:
                    continue
                color = "#C44E52" if j in _LEFT else "#4C72B0" if j in _RIGHT else "#333333"
                strip.plot([x[j], x[p]], [y[j], y[p]], color=color, lw=2)
        strip.scatter(x, y, s=6, color="black", zorder=3)
        strip.text(
            slot * width,
            -0.15,
            f"f{frame}\n{frame / fps:.2f}s",
            ha="center",
            va="top",
            fontsize=8,
        )
    strip.set_aspect("equal")
    strip.axis("off")
    strip.set_title("selected key frames (front view; red = left side)" if len(key_frames) else "motion")

    ax = fig.add_subplot(grid[1])
    ax.plot(times, speed, color="#4C72B0", lw=1.2, label="mean joint speed")
    ax.set_ylabel("speed (units/s)")
    ax2 = ax.twinx()
    ax2.plot(times, height, color="#DD8452", lw=1.2, label="root height")
    ax2.set_ylabel("root height")
    for f, color in zip(key_frames, key_colors):
        ax.axvline(f / fps, color=color, lw=1, alpha=0.8)
    ax.set_xlim(0, max(times[-1], 1e-6))
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right", fontsize=8)
    ax.set_title("motion over time (green lines: key frames the question picked" +
                 ("; grey: evenly spaced ones)" if evenly_spaced.any() else ")"))

    ax3 = fig.add_subplot(grid[2], sharex=ax)
    if scores is not None and len(scores):
        score_times = np.arange(len(scores)) * scale / fps
        ax3.plot(score_times, scores, color="#8172B2", lw=1.2)
        key_scores = scores[np.clip(np.round(keys).astype(int), 0, len(scores) - 1)]
        for chosen, color, label in ((~evenly_spaced, "#55A868", "key frames (picked by the question)"),
                                     (evenly_spaced, "#999999", "key frames (evenly spaced)")):
            if chosen.any():
                ax3.scatter(key_frames[chosen] / fps, key_scores[chosen], color=color, zorder=3, s=20, label=label)
        ax3.legend(loc="upper right", fontsize=8)
    else:
        ax3.text(
            0.5,
            0.5,
            "no frame scores",
            transform=ax3.transAxes,
            ha="center",
            va="center",
        )
    ax3.set_xlabel("time (s)")
    ax3.set_ylabel("frame score")
    ax3.set_title("text-guided frame scores")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return str(path)
