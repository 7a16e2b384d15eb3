# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Draw a motion (T, 22, 3 SMPL joints, Y-up, metres) as a person figure into frames and videos.

Pure numpy + PIL (no matplotlib, no OpenGL): the camera projection of every frame is one vectorised
numpy step, then each frame is a few hundred PIL draw calls: a sky/ground background precomputed once
(the camera never rolls or changes elevation, so the horizon row is fixed), a ground grid fixed in the
world (so locomotion shows against it), the figure's shadow (its bones flattened onto the floor), and
the figure itself: thick limbs with round joints, a filled torso, a head disc, left and right limbs in
different colours, drawn far to near (painter's algorithm) with perspective widths.

The camera orbits a target at the figure's pelvis (smoothed along the path when ``follow``) at a given
azimuth (degrees about +y, 0 = camera on the +z side looking toward -z), elevation and distance. All
randomness goes through a ``numpy.random.Generator``; the same joints, camera and style give the same
pixels. Videos: mp4 (H.264, ``libx264``), webm (VP9) through PyAV, GIF through PIL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["Camera", "RenderStyle", "random_camera", "random_style", "render_motion", "render_video", "write_video"]

# (parent, child, kind) bones drawn; kind: 0 torso, 1 left, 2 right
_BONES = (
    (0, 3, 0), (3, 6, 0), (6, 9, 0), (9, 12, 0), (12, 15, 0), (0, 1, 0), (0, 2, 0), (9, 13, 0), (9, 14, 0),
    (13, 16, 1), (16, 18, 1), (18, 20, 1), (1, 4, 1), (4, 7, 1), (7, 10, 1),
    (14, 17, 2), (17, 19, 2), (19, 21, 2), (2, 5, 2), (5, 8, 2), (8, 11, 2),
)  # fmt: skip
# bone radius (m): spine/pelvis, collars, upper/lower arm, thigh/shank, foot
_RADIUS = {
    (0, 3): 0.075, (3, 6): 0.08, (6, 9): 0.085, (9, 12): 0.05, (12, 15): 0.045, (0, 1): 0.07, (0, 2): 0.07,
    (9, 13): 0.06, (9, 14): 0.06, (13, 16): 0.055, (14, 17): 0.055, (16, 18): 0.045, (17, 19): 0.045,
    (18, 20): 0.038, (19, 21): 0.038, (1, 4): 0.065, (2, 5): 0.065, (4, 7): 0.05, (5, 8): 0.05,
    (7, 10): 0.04, (8, 11): 0.04,
}  # fmt: skip
_TORSO_QUAD = (1, 16, 17, 2)


@dataclass
class Camera:
    """A perspective camera orbiting the figure. Angles in degrees, distance in metres."""

    azimuth: float = 30.0
    elevation: float = 15.0
    distance: float = 4.0
    fov: float = 40.0
    follow: bool = True  # track the (smoothed) pelvis; else look at the path's mean
    target_height: float | None = None  # look-at height (m); default 55% of the head height


@dataclass
class RenderStyle:
    """Colours (RGB 0-255) and sizes."""

    sky_top: tuple = (200, 215, 235)
    sky_bottom: tuple = (235, 240, 245)
    ground_near: tuple = (150, 160, 150)
    ground_far: tuple = (185, 190, 185)
    grid: tuple = (120, 130, 120)
    shadow: tuple = (100, 105, 100)
    left: tuple = (200, 70, 60)
    right: tuple = (60, 90, 200)
    torso: tuple = (70, 70, 80)
    head: tuple = (230, 190, 160)
    thickness: float = 1.0  # multiplies every bone radius
    grid_spacing: float = 0.5  # metres
    grid_extent: float = 6.0  # metres around the target


def random_camera(rng: np.random.Generator) -> Camera:
    """A random view: any azimuth, 3-35 degrees elevation, 3.2-5 m away, 35-50 degree field of view."""
    return Camera(
        azimuth=float(rng.uniform(0.0, 360.0)),
        elevation=float(rng.uniform(3.0, 35.0)),
        distance=float(rng.uniform(3.2, 5.0)),
        fov=float(rng.uniform(35.0, 50.0)),
        follow=bool(rng.random() < 0.85),
    )


def _hsv(h, s, v):
    import colorsys

    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def random_style(rng: np.random.Generator) -> RenderStyle:
    """Random background, ground and figure colours (left and right limbs always distinguishable)."""
    sky_h = rng.uniform(0, 1)
    ground_h = rng.uniform(0, 1)
    gv = rng.uniform(0.45, 0.8)
    ground_near = _hsv(ground_h, rng.uniform(0.05, 0.4), gv)
    fig_h = rng.uniform(0, 1)
    return RenderStyle(
        sky_top=_hsv(sky_h, rng.uniform(0.1, 0.5), rng.uniform(0.6, 0.95)),
        sky_bottom=_hsv(sky_h, rng.uniform(0.0, 0.2), rng.uniform(0.85, 1.0)),
        ground_near=ground_near,
        ground_far=_hsv(ground_h, rng.uniform(0.05, 0.3), min(1.0, gv + 0.12)),
        grid=_hsv(ground_h, rng.uniform(0.1, 0.5), gv * 0.75),
        shadow=_hsv(ground_h, 0.3, gv * 0.55),
        left=_hsv(fig_h, rng.uniform(0.55, 0.95), rng.uniform(0.55, 0.95)),
        right=_hsv(fig_h + rng.uniform(0.3, 0.7), rng.uniform(0.55, 0.95), rng.uniform(0.55, 0.95)),
        torso=_hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.6), rng.uniform(0.2, 0.6)),
        head=_hsv(rng.uniform(0.02, 0.1), rng.uniform(0.2, 0.6), rng.uniform(0.5, 0.95)),
        thickness=float(rng.uniform(0.8, 1.25)),
    )


def _moving_average(x, width):
    if width <= 1 or len(x) < 2:
        return x
    pad = width // 2
    xp = np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], pad, 0)], 0)
    c = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), xp], 0), 0)
    return (c[width:] - c[:-width])[: len(x)] / width


def _camera_frames(joints, cam: Camera):
    """Per-frame eye positions (T, 3) and world->camera rotations (T, 3, 3) (rows: right, up, forward)."""
    t = len(joints)
    pelvis = joints[:, 0, [0, 2]]
    target_xz = _moving_average(pelvis, 31) if cam.follow else np.repeat(pelvis.mean(0, keepdims=True), t, 0)
    height = cam.target_height
    if height is None:
        height = 0.55 * float(np.median(joints[:, 15, 1]))
    target = np.stack([target_xz[:, 0], np.full(t, height), target_xz[:, 1]], -1)
    az, el = np.deg2rad(cam.azimuth), np.deg2rad(cam.elevation)
    offset = cam.distance * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    eye = target + offset
    f = -offset / np.linalg.norm(offset)
    r = np.cross(f, [0.0, 1.0, 0.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    rot = np.stack([r, u, f])
    return eye, np.broadcast_to(rot, (t, 3, 3)), target


def _background(w, h, focal, cam: Camera, style: RenderStyle) -> Image.Image:
    horizon = h / 2 - focal * np.tan(np.deg2rad(cam.elevation))
    rows = np.arange(h, dtype=float)[:, None]
    sky_t = np.clip(rows / max(horizon, 1.0), 0, 1)
    sky = (1 - sky_t) * np.array(style.sky_top) + sky_t * np.array(style.sky_bottom)
    gr_t = np.clip((rows - horizon) / max(h - horizon, 1.0), 0, 1)
    ground = (1 - gr_t) * np.array(style.ground_far) + gr_t * np.array(style.ground_near)
    col = np.where(rows < horizon, sky, ground)
    img = np.repeat(col[:, None, :], w, axis=1).astype(np.uint8)
    return Image.fromarray(img, "RGB")


def _grid_segments(target, style: RenderStyle):
    """World grid lines (L, 2, 3) on y = 0 around the target snapped to the grid."""
    sp, ext = style.grid_spacing, style.grid_extent
    cx, cz = np.round(target[0] / sp) * sp, np.round(target[2] / sp) * sp
    ks = np.arange(-ext, ext + 1e-9, sp)
    segs = []
    for k in ks:
        segs.append([[cx + k, 0.0, cz - ext], [cx + k, 0.0, cz + ext]])
        segs.append([[cx - ext, 0.0, cz + k], [cx + ext, 0.0, cz + k]])
    return np.array(segs)


def render_motion(
    joints,
    camera: Camera | None = None,
    style: RenderStyle | None = None,
    size: int | tuple[int, int] = 224,
    seed: int | np.random.Generator | None = 0,
    supersample: int = 1,
) -> np.ndarray:
    """Render joints (T, 22, 3; Y-up, metres) to frames (T, H, W, 3) uint8.

    ``camera`` / ``style`` default to random ones drawn from ``seed`` (an int or a Generator), so a
    seed alone fixes the view and colours. ``size``: an int (square) or ``(width, height)``.
    ``supersample`` > 1 draws at that factor and downsamples (anti-aliasing, slower).
    """
    return np.stack(list(iter_frames(joints, camera, style, size, seed, supersample)))


def iter_frames(joints, camera=None, style=None, size=224, seed=0, supersample=1):
    """Like :func:`render_motion` but yields one frame (H, W, 3) at a time (long clips, video writing)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise ValueError(f"render: joints must be (T, 22, 3) SMPL joints, got {joints.shape}.")
    if camera is None or style is None:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        camera = camera or random_camera(rng)
        style = style or random_style(rng)
    w, h = (size, size) if isinstance(size, int) else size
    ss = max(1, int(supersample))
    W, H = w * ss, h * ss
    focal = (H / 2) / np.tan(np.deg2rad(camera.fov) / 2)
    eye, rot, target = _camera_frames(joints, camera)
    near = 0.1

    def project(points):  # (T, N, 3) -> (T, N, 2) pixels, (T, N) depth
        pc = np.einsum("tij,tnj->tni", rot, points - eye[:, None, :])
        z = np.maximum(pc[..., 2], near)
        return np.stack([W / 2 + focal * pc[..., 0] / z, H / 2 - focal * pc[..., 1] / z], -1), z

    body_xy, body_z = project(joints)
    shadow = joints.copy()
    shadow[..., 1] = 0.0
    shadow_xy, _ = project(shadow)
    # head centre: past the head joint along neck->head
    neck_dir = joints[:, 15] - joints[:, 12]
    neck_dir /= np.maximum(np.linalg.norm(neck_dir, axis=-1, keepdims=True), 1e-6)
    head_c = joints[:, 15] + 0.06 * neck_dir
    head_xy, head_z = project(head_c[:, None])
    head_r = 0.105 * focal / head_z[:, 0]

    # grid lines, clipped to the near plane, in camera space per frame
    grids = []
    for ti in range(len(joints)):
        if ti == 0 or camera.follow:
            segs = _grid_segments(target[ti], style)
        pc = np.einsum("ij,lkj->lki", rot[ti], segs - eye[ti])
        za, zb = pc[:, 0, 2], pc[:, 1, 2]
        keep = (za > near) | (zb > near)
        pc, za, zb = pc[keep], za[keep], zb[keep]
        tcl = np.clip((near - za) / np.where(np.abs(zb - za) < 1e-9, 1e-9, zb - za), 0, 1)
        a = np.where((za < near)[:, None], pc[:, 0] + tcl[:, None] * (pc[:, 1] - pc[:, 0]), pc[:, 0])
        tcl2 = np.clip((near - zb) / np.where(np.abs(za - zb) < 1e-9, 1e-9, za - zb), 0, 1)
        b = np.where((zb < near)[:, None], pc[:, 1] + tcl2[:, None] * (pc[:, 0] - pc[:, 1]), pc[:, 1])
        za2, zb2 = np.maximum(a[:, 2], near), np.maximum(b[:, 2], near)
        pa = np.stack([W / 2 + focal * a[:, 0] / za2, H / 2 - focal * a[:, 1] / za2], -1)
        pb = np.stack([W / 2 + focal * b[:, 0] / zb2, H / 2 - focal * b[:, 1] / zb2], -1)
        grids.append(np.concatenate([pa, pb], -1).tolist())

    bg = _background(W, H, focal, camera, style)
    colours = (style.torso, style.left, style.right)
    par = np.array([b[0] for b in _BONES])
    chi = np.array([b[1] for b in _BONES])
    radius = np.array([_RADIUS[(b[0], b[1])] for b in _BONES]) * style.thickness
    bone_z = 0.5 * (body_z[:, par] + body_z[:, chi])  # (T, B)
    bone_w = 2.0 * radius[None] * focal / bone_z
    order = np.argsort(-bone_z, axis=1)
    torso_z = body_z[:, list(_TORSO_QUAD)].mean(1)
    shadow_w = np.maximum(1.0, 2.0 * radius[None] * focal / body_z[:, [0]] * 0.9)
    grid_w = max(1, ss)
    for ti in range(len(joints)):
        img = bg.copy()
        draw = ImageDraw.Draw(img)
        for x0, y0, x1, y1 in grids[ti]:
            draw.line((x0, y0, x1, y1), fill=style.grid, width=grid_w)
        sxy = shadow_xy[ti].tolist()
        for bi, (a, b, _) in enumerate(_BONES):
            wdt = shadow_w[ti, bi]
            draw.line((*sxy[a], *sxy[b]), fill=style.shadow, width=int(wdt + 0.5))
            r = wdt / 2
            draw.ellipse((sxy[b][0] - r, sxy[b][1] - r, sxy[b][0] + r, sxy[b][1] + r), fill=style.shadow)
        bxy = body_xy[ti].tolist()
        items = [(bone_z[ti, bi], 0, bi) for bi in order[ti]] + [(torso_z[ti], 1, -1), (head_z[ti, 0], 2, -1)]
        items.sort(key=lambda it: -it[0])
        for _, what, bi in items:
            if what == 0:
                a, b, kind = _BONES[bi]
                col = colours[kind]
                wdt = bone_w[ti, bi]
                r = wdt / 2
                draw.line((*bxy[a], *bxy[b]), fill=col, width=max(1, int(wdt + 0.5)))
                for j in (a, b):
                    draw.ellipse((bxy[j][0] - r, bxy[j][1] - r, bxy[j][0] + r, bxy[j][1] + r), fill=col)
            elif what == 1:
                draw.polygon([tuple(bxy[j]) for j in _TORSO_QUAD], fill=style.torso)
            else:
                cx, cy = head_xy[ti, 0]
                r = head_r[ti]
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=style.head, outline=style.torso, width=max(1, ss))
        if ss > 1:
            img = img.reduce(ss)
        yield np.asarray(img)


def write_video(frames, path: str | os.PathLike, fps: float = 30.0, crf: int | None = None) -> str:
    """Write frames (T, H, W, 3) uint8 (or an iterable of them) to ``path``: ``.mp4`` H.264
    (yuv420p), ``.webm`` VP9, ``.gif`` (PIL). Returns the path."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".gif":
        imgs = [Image.fromarray(np.asarray(f)) for f in frames]
        imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=round(1000 / fps), loop=0)
        return path
    from fractions import Fraction

    import av

    if ext in (".mp4", ".mov", ".mkv"):
        codec, options = "libx264", {"crf": str(23 if crf is None else crf), "preset": "veryfast"}
    elif ext == ".webm":
        codec, options = "libvpx-vp9", {"crf": str(33 if crf is None else crf), "b": "0", "deadline": "realtime", "cpu-used": "8"}
    else:
        raise ValueError(f"write_video: unsupported extension {ext!r}; use .mp4, .webm or .gif.")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(path, "w") as container:
        stream = None
        for frame in frames:
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if stream is None:
                h, w = frame.shape[:2]
                if h % 2 or w % 2:
                    raise ValueError(f"write_video: {ext} needs even frame sizes, got {w}x{h}.")
                stream = container.add_stream(codec, rate=rate, options=options)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError("write_video: no frames.")
        for packet in stream.encode():
            container.mux(packet)
    return path


def render_video(joints, path, camera=None, style=None, size=224, seed=0, fps: float = 30.0, supersample: int = 1) -> str:
    """Render joints straight to a video file (frames streamed, never all in memory)."""
    return write_video(iter_frames(joints, camera, style, size, seed, supersample), path, fps=fps)
