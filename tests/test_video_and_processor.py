"""Video decoding/sampling, the frame processor and `LlamoProcessor` (text + video + motion).

Real clips: tests/fixtures/videos (see tests/fixtures/SOURCES.md). Synthetic clips with many keyframes, other
containers and broken files are written with PyAV into a temporary folder. The tokenizer is a tiny word-level
one built offline, so every token (and so the exact guidance mask) is known.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoProcessor,
    CLIPVisionConfig,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

from processing_llamo import (
    INSTRUCTION_END,
    INSTRUCTION_START,
    LLAMO_CHAT_TEMPLATE,
    LlamoFrameProcessor,
    LlamoMotionProcessor,
    LlamoProcessor,
    read_video,
    select_frame_indices,
)

FIXTURES = Path(__file__).parent / "fixtures"
RENDER = FIXTURES / "videos" / "example1.mp4"  # MotionGPT render, 768x768, 20 fps, 84 frames, one keyframe
REAL = FIXTURES / "videos" / "part_0.mp4"  # mmaction2 clip, 340x256, 30 fps, 32 frames
JOINTS = FIXTURES / "humanml3d" / "012314_joints22.npy"  # (170, 22, 3) at 20 fps
K = 4
WORDS = "user assistant system what is the man doing ? hi there , kick he kicks describe motion".split()


# ------------------------------------------------------------------------------------------------------------------
# Helpers and fixtures
# ------------------------------------------------------------------------------------------------------------------


def decode_all(path):
    """Ground truth: every frame decoded by PyAV in presentation order, and its time in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        time_base = float(stream.time_base)
        frames = sorted(((f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(stream)), key=lambda x: x[0])
    pts = np.array([p for p, _ in frames])
    return np.stack([f for _, f in frames]), (pts - pts[0]) * time_base


def write_video(path, codec="libx264", num_frames=60, fps=30, size=(48, 64), gop=8, options=None):
    """A clip whose frames all differ (a square moving over a gradient), keyframe every `gop` frames."""
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        if options:
            stream.options = options
        ramp = np.linspace(0, 120, width, dtype=np.uint8)[None, :, None]
        for i in range(num_frames):
            image = np.broadcast_to(ramp, (height, width, 3)).copy()
            x = (i * 3) % (width - 12)
            image[10:22, x : x + 12] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    files = {
        # Keyframe every 8 frames and B-frames: the seek path and the pts/dts difference are exercised.
        "mp4": write_video(folder / "gop8.mp4", options={"x264-params": "keyint=8:min-keyint=8:scenecut=0:bframes=2"}),
        "webm": write_video(folder / "clip.webm", codec="libvpx-vp9", num_frames=40, gop=10),
        "avi": write_video(folder / "clip.avi", codec="mpeg4", num_frames=40, gop=10),
    }
    data = REAL.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with av.open(str(folder / "audio_only.wav"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    files.update(truncated=folder / "truncated.mp4", garbage=folder / "garbage.mp4", audio=folder / "audio_only.wav")
    return files


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A word-level tokenizer with ChatML special tokens, saved and reloaded as transformers would."""
    vocab = {word: i for i, word in enumerate(["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(folder)
    return folder


def make_processor(tokenizer_dir, **frame_kwargs):
    frame_kwargs = {"size": 32, "num_frames": 8, **frame_kwargs}
    return LlamoProcessor(
        image_processor=LlamoFrameProcessor(**frame_kwargs),
        feature_extractor=LlamoMotionProcessor(representation="joints22"),
        tokenizer=PreTrainedTokenizerFast.from_pretrained(tokenizer_dir),
        num_key_frames=K,
    )


@pytest.fixture
def processor(tokenizer_dir):
    return make_processor(tokenizer_dir)


@pytest.fixture(scope="module")
def joints():
    return np.load(JOINTS)


# ------------------------------------------------------------------------------------------------------------------
# Decoding and sampling
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [RENDER, REAL], ids=["render", "real"])
@pytest.mark.parametrize("num_frames", [8, 1000])
def test_uniform_sampling_matches_pyav(path, num_frames):
    frames, times = decode_all(path)
    clip = read_video(path, num_frames=num_frames)
    expected = np.round(np.linspace(0, len(frames) - 1, min(num_frames, len(frames)))).astype(int)
    assert len(clip.frames) == len(expected) == min(num_frames, len(frames))
    np.testing.assert_array_equal(clip.frames, frames[expected])
    np.testing.assert_allclose(clip.timestamps, times[expected])
    assert clip.timestamps[0] == 0 and clip.timestamps[-1] == pytest.approx(times[-1])


def test_fps_sampling_timestamps():
    frames, times = decode_all(REAL)  # 30 fps
    clip = read_video(REAL, fps=5)
    np.testing.assert_allclose(clip.timestamps, np.arange(len(clip.timestamps)) / 5, atol=1e-6)
    assert len(clip.timestamps) == int(times[-1] * 5) + 1
    np.testing.assert_array_equal(clip.frames, frames[np.searchsorted(times, clip.timestamps - 1e-6)])
    assert len(read_video(REAL, fps=5, num_frames=3).frames) == 3  # num_frames caps a rate-based sample
    assert len(read_video(REAL, fps=120).frames) == len(frames)  # never more frames than the clip has
    np.testing.assert_array_equal(select_frame_indices(np.arange(10) / 10, fps=2.5), [0, 4, 8])


@pytest.mark.parametrize("container", ["mp4", "webm", "avi"])
def test_seek_path_equals_full_decode(media, container):
    frames, times = decode_all(media[container])
    for num_frames, fps in [(5, None), (16, None), (None, 7.0)]:
        clip = read_video(media[container], num_frames=num_frames, fps=fps)
        indices = select_frame_indices(times, num_frames, fps)
        np.testing.assert_array_equal(clip.frames, frames[indices])
        np.testing.assert_allclose(clip.timestamps, times[indices])


def test_resize_on_decode(media):
    frames, _ = decode_all(media["mp4"])
    clip = read_video(media["mp4"], num_frames=4, size=(24, 40))
    assert clip.frames.shape == (4, 24, 40, 3) and clip.frames.dtype == np.uint8
    assert read_video(media["mp4"], num_frames=4).frames.shape == (4, 48, 64, 3)  # native size without `size`
    # swscale's bilinear and torch's antialiased bilinear agree to within a few grey levels
    from_array = read_video(frames, num_frames=4, size=(24, 40), input_fps=30)
    assert np.abs(from_array.frames.astype(int) - clip.frames.astype(int)).mean() < 3


def test_bytes_array_and_pil_inputs():
    from_path = read_video(REAL, num_frames=6)
    from_bytes = read_video(REAL.read_bytes(), num_frames=6)
    np.testing.assert_array_equal(from_bytes.frames, from_path.frames)
    np.testing.assert_array_equal(from_bytes.timestamps, from_path.timestamps)

    frames, _ = decode_all(REAL)
    from_array = read_video(frames, num_frames=6, input_fps=30)
    np.testing.assert_array_equal(from_array.frames, from_path.frames)
    # The file's own clock is slightly irregular (its last frame comes at 1.067 s, not 31/30 s).
    np.testing.assert_allclose(from_array.timestamps, np.arange(32)[[0, 6, 12, 19, 25, 31]] / 30)
    np.testing.assert_allclose(from_array.timestamps, from_path.timestamps, atol=1 / 30 + 1e-6)
    np.testing.assert_array_equal(read_video(torch.from_numpy(frames), num_frames=6).frames, from_path.frames)

    images = [Image.fromarray(frame) for frame in frames]
    from_pil = read_video(images, fps=10, input_fps=30)
    np.testing.assert_array_equal(from_pil.frames, frames[::3])
    np.testing.assert_allclose(from_pil.timestamps, np.arange(len(frames[::3])) / 10)


def test_errors_name_the_input(media, tmp_path):
    for key in ("garbage", "truncated"):
        with pytest.raises(ValueError, match=media[key].name):
            read_video(media[key], num_frames=8)
    with pytest.raises(ValueError, match="no video stream"):
        read_video(media["audio"])
    with pytest.raises(ValueError, match="no frames"):
        read_video(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        read_video([])
    for fps in (0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"{REAL.name}.*fps"):
            read_video(REAL, fps=fps)
    with pytest.raises(ValueError, match="num_frames"):
        read_video(REAL, num_frames=0)
    with pytest.raises(ValueError, match="uint8"):
        read_video(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")


# ------------------------------------------------------------------------------------------------------------------
# Frame processor
# ------------------------------------------------------------------------------------------------------------------


def test_frame_processor_batch_and_normalisation():
    frame_processor = LlamoFrameProcessor(size=16, num_frames=5)
    white = np.full((3, 20, 30, 3), 255, np.uint8)
    out = frame_processor([white, REAL])
    assert out["pixel_values_videos"].shape == (2, 5, 3, 16, 16) and out["pixel_values_videos"].dtype == torch.float32
    torch.testing.assert_close(out["pixel_values_videos"][0, :3], torch.ones(3, 3, 16, 16))  # SigLIP: 255 -> 1
    assert out["pixel_values_videos"][0, 3:].abs().sum() == 0
    assert out["frame_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5] and out["frame_mask"].dtype == torch.int64
    assert out["frame_timestamps"].dtype == torch.float32 and out["frame_timestamps"][0, 1] == pytest.approx(1 / 30)
    single = frame_processor(white, return_tensors="np")
    assert isinstance(single["pixel_values_videos"], np.ndarray) and single["pixel_values_videos"].shape[0] == 1


def test_frame_processor_from_vision_config():
    siglip = LlamoFrameProcessor.from_vision_config(SiglipVisionConfig(image_size=64))
    assert siglip.size == {"height": 64, "width": 64} and siglip.image_mean == [0.5] * 3
    clip = LlamoFrameProcessor.from_vision_config(CLIPVisionConfig(image_size=32).to_dict(), num_frames=4)
    assert clip.image_mean[0] == pytest.approx(0.48145466) and clip.num_frames == 4
    with pytest.raises(ValueError, match="Unknown vision tower"):
        LlamoFrameProcessor.from_vision_config({"model_type": "vit", "image_size": 224})
    with pytest.raises(ValueError, match="video_fps"):
        LlamoFrameProcessor(video_fps=0)


# ------------------------------------------------------------------------------------------------------------------
# LlamoProcessor: text
# ------------------------------------------------------------------------------------------------------------------


def ids_of(processor, words):
    return processor.tokenizer.convert_tokens_to_ids(words.split())


def test_marker_expansion_and_guidance_mask(processor, joints):
    motion = processor.motion_token_id
    text = [
        f"<|im_start|> user <motion> {INSTRUCTION_START}what is he doing ?{INSTRUCTION_END} <|im_end|>",
        "hi <motion> there <motion>",  # no instruction markers: every ordinary token is guidance
    ]
    out = processor(text=text, motions=[joints, joints, joints], motion_fps=20)
    start, end = ids_of(processor, "<|im_start|> <|im_end|>")
    first = [start, *ids_of(processor, "user"), *[motion] * K, *ids_of(processor, "what is he doing ?"), end]
    second = [*ids_of(processor, "hi"), *[motion] * K, *ids_of(processor, "there"), *[motion] * K]
    pad = processor.tokenizer.pad_token_id
    assert out["input_ids"].tolist() == [first, [pad] * (len(first) - len(second)) + second]  # left padding
    assert out["guidance_mask"].tolist() == [
        [0, 0] + [0] * K + [1] * 5 + [0],
        [0] * (len(first) - len(second)) + [1] + [0] * K + [1] + [0] * K,
    ]
    assert out["attention_mask"].tolist()[1] == [0] * (len(first) - len(second)) + [1] * len(second)
    assert out["guidance_mask"].dtype == torch.int64
    right = processor(text=text, motions=[joints] * 3, motion_fps=20, padding_side="right")
    assert right["input_ids"][1, -1] == pad


def test_marker_errors(processor, joints):
    with pytest.raises(ValueError, match="expected 2, got 1"):
        processor(text="<motion> hi <motion>", videos=[REAL])
    with pytest.raises(ValueError, match="expected 0, got 1"):
        processor(text="hi there", motions=[joints])
    with pytest.raises(ValueError, match="expected 1, got 2"):
        processor(text=["<motion>", "hi"], motions=[joints], videos=[REAL, REAL])
    with pytest.raises(ValueError, match="neither a video nor a motion"):
        processor(text="<motion> <motion>", videos=[REAL, None], motions=[joints, None])
    with pytest.raises(ValueError, match="Unclosed"):
        processor(text=f"{INSTRUCTION_START} hi")
    with pytest.raises(ValueError, match="placeholder"):
        processor(text="hi <motion>", motions=joints, truncation=True, max_length=3)


# ------------------------------------------------------------------------------------------------------------------
# LlamoProcessor: media on one timeline
# ------------------------------------------------------------------------------------------------------------------


def test_video_and_motion_share_the_timeline(processor, joints):
    text = ["<motion> describe", "hi <motion> <motion>"]
    out = processor(text=text, videos=[RENDER, REAL, None], motions=[joints, None, joints], motion_fps=20)
    assert set(out) == {
        "input_ids",
        "attention_mask",
        "guidance_mask",
        "pixel_values_videos",
        "frame_mask",
        "frame_timestamps",
        "motion_values",
        "motion_mask",
    }
    video = read_video(RENDER, num_frames=8)
    length = 170 * 30 // 20 - 1  # the motion-only clip: 8.45 s resampled at motion_fps=30 -> 254 frames
    assert out["pixel_values_videos"].shape == (3, length, 3, 32, 32)
    assert out["motion_values"].shape == (3, length, 70) and out["motion_values"].dtype == torch.float32
    assert out["frame_mask"].sum(1).tolist() == [8, 8, 0] and out["motion_mask"].sum(1).tolist() == [8, 0, length]
    torch.testing.assert_close(out["frame_mask"][0], out["motion_mask"][0])  # same clip, same mask
    np.testing.assert_allclose(out["frame_timestamps"][0, :8].numpy(), video.timestamps, atol=1e-6)
    # The paired motion is the motion processor's output sampled at exactly the video frames' times.
    direct = processor.motion_processor([joints], timestamps=[video.timestamps], fps=20)
    torch.testing.assert_close(out["motion_values"][0, :8], direct["motion_values"][0])
    assert out["pixel_values_videos"][2].abs().sum() == 0 and out["motion_values"][1].abs().sum() == 0
    np.testing.assert_allclose(out["frame_timestamps"][2, :3].numpy(), [0, 1 / 30, 2 / 30], atol=1e-6)


def test_single_modality_keys(processor, joints):
    video_only = processor(text="<motion> hi", videos=REAL, num_frames=5)
    assert "motion_values" not in video_only and video_only["pixel_values_videos"].shape == (1, 5, 3, 32, 32)
    motion_only = processor(text="<motion> hi", motions=joints, motion_fps=20)
    assert "pixel_values_videos" not in motion_only and "frame_mask" not in motion_only
    text_only = processor(text="hi there")
    assert set(text_only) == {"input_ids", "attention_mask", "guidance_mask"}
    as_numpy = processor(text="<motion> hi", videos=REAL, return_tensors="np")
    assert isinstance(as_numpy["pixel_values_videos"], np.ndarray) and isinstance(as_numpy["input_ids"], np.ndarray)


# ------------------------------------------------------------------------------------------------------------------
# Chat template
# ------------------------------------------------------------------------------------------------------------------


def conversation(joints):
    return [
        {"role": "system", "content": "describe motion"},
        {
            "role": "user",
            "content": [
                {"type": "video", "path": str(RENDER)},
                {"type": "motion", "motion": joints},  # pairs with the video above: one clip
                {"type": "text", "text": "what is he doing ?"},
                {"type": "motion", "path": str(JOINTS)},  # after text: a new clip, motion only
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "he kicks"}]},
        {
            "role": "user",
            "content": [{"type": "video", "video": str(REAL), "motion": joints}, {"type": "text", "text": "hi"}],
        },
    ]


def test_chat_template_rendering(processor, joints):
    rendered = processor.apply_chat_template(conversation(joints), add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\ndescribe motion<|im_end|>\n"
        f"<|im_start|>user\n<motion>\n{INSTRUCTION_START}what is he doing ?{INSTRUCTION_END}<motion>\n<|im_end|>\n"
        "<|im_start|>assistant\nhe kicks<|im_end|>\n"
        f"<|im_start|>user\n<motion>\n{INSTRUCTION_START}hi{INSTRUCTION_END}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert processor.chat_template == LLAMO_CHAT_TEMPLATE


def test_apply_chat_template_equals_call(processor, joints):
    conv = conversation(joints)
    out = processor.apply_chat_template(
        conv,
        tokenize=True,
        return_dict=True,
        add_generation_prompt=True,
        return_tensors="pt",
        processor_kwargs={"motion_fps": 20},
    )
    text = processor.apply_chat_template(conv, add_generation_prompt=True)
    expected = processor(
        text=text,
        videos=[RENDER, None, REAL],
        motions=[joints, JOINTS, joints],
        motion_fps=20,
        add_special_tokens=False,
    )
    assert set(out) == set(expected)
    for key in expected:
        torch.testing.assert_close(out[key], expected[key], msg=key)
    assert (out["input_ids"] == processor.motion_token_id).sum() == 3 * K
    # Guidance: exactly the user's words (system and assistant text excluded).
    guided = out["input_ids"][0][out["guidance_mask"][0].bool()].tolist()
    assert guided == ids_of(processor, "what is he doing ? hi")
    assert not any(marker in processor.decode(out["input_ids"][0]) for marker in (INSTRUCTION_START, INSTRUCTION_END))


def test_motion_block_settings_apply_to_their_clip(processor):
    """`fps` / `up_axis` on a motion block apply to that clip alone (a BABEL-QA Z-up joints file beside a Y-up one)."""
    joints_y = np.load(JOINTS)
    z_up = joints_y[..., [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # the same motion with Z as the up axis
    conversation = [{"role": "user", "content": [
        {"type": "motion", "path": str(JOINTS), "fps": 20},
        {"type": "text", "text": "what is he doing ?"},
        {"type": "motion", "motion": z_up, "fps": 20, "up_axis": "z"},
        {"type": "text", "text": "hi"},
    ]}]
    out = processor.apply_chat_template(conversation, tokenize=True, return_dict=True, return_tensors="pt")
    assert out["motion_values"].shape[0] == 2
    torch.testing.assert_close(out["motion_values"][0], out["motion_values"][1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out["frame_timestamps"][0], out["frame_timestamps"][1])
    without_fps = [{"role": "user", "content": [{"type": "motion", "path": str(JOINTS)}, {"type": "text", "text": "hi"}]}]
    with pytest.raises(ValueError, match="no frame rate"):
        processor.apply_chat_template(without_fps, tokenize=True, return_dict=True)


def test_assistant_tokens_mask(processor, joints):
    conv = conversation(joints)[:3]
    out = processor.apply_chat_template(
        conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, processor_kwargs={"motion_fps": 20}
    )
    ids = out["input_ids"][0].tolist()
    answer = [token for token, flag in zip(ids, out["assistant_masks"][0]) if flag]
    assert answer == ids_of(processor, "he kicks <|im_end|>")


# ------------------------------------------------------------------------------------------------------------------
# Save / load
# ------------------------------------------------------------------------------------------------------------------


def saved_processor(tokenizer_dir, folder):
    processor = make_processor(tokenizer_dir, video_fps=4.0)
    processor.feature_extractor.mean = [0.1] * 70
    processor.feature_extractor.std = [2.0] * 70
    processor.save_pretrained(folder)
    return processor


def test_save_and_auto_load(tokenizer_dir, tmp_path, joints):
    processor = saved_processor(tokenizer_dir, tmp_path)
    assert {"processor_config.json", "chat_template.jinja", "tokenizer.json"} <= set(os.listdir(tmp_path))
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["num_key_frames"] == K and config["image_processor"]["video_fps"] == 4.0
    assert config["feature_extractor"]["mean"] == [0.1] * 70
    assert (tmp_path / "chat_template.jinja").read_text() == LLAMO_CHAT_TEMPLATE

    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is LlamoProcessor and loaded.motion_token_id == processor.motion_token_id
    assert loaded.image_processor.size == {"height": 32, "width": 32} and loaded.image_processor.video_fps == 4.0
    assert loaded.feature_extractor.std == [2.0] * 70 and loaded.tokenizer.padding_side == "left"
    inputs = dict(text=["<motion> what", "hi <motion>"], videos=[REAL, None], motions=[joints, joints], motion_fps=20)
    expected, got = processor(**inputs), loaded(**inputs)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], msg=key)
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is LlamoFrameProcessor
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is LlamoMotionProcessor


def test_remote_code_load_in_fresh_process(tokenizer_dir, tmp_path):
    saved_processor(tokenizer_dir, tmp_path / "saved")
    assert {"processing_llamo.py", "frame_processing_llamo.py", "video_io.py", "motion_processing_llamo.py"} <= set(
        os.listdir(tmp_path / "saved")
    )
    remote = shutil.copytree(tmp_path / "saved", tmp_path / "remote")
    script = (
        "import sys, json, numpy as np\n"
        "from transformers import AutoProcessor\n"
        "p = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "out = p(text='hi <motion>', videos=np.zeros((30, 40, 40, 3), np.uint8))\n"
        "print(json.dumps({'module': type(p).__module__, 'imported': 'processing_llamo' in sys.modules,\n"
        "    'std': p.feature_extractor.std[0], 'fps': p.image_processor.video_fps,\n"
        "    'shapes': {k: list(v.shape) for k, v in out.items()}}))\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(remote)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules") and not report["imported"]
    assert report["std"] == 2.0 and report["fps"] == 4.0
    assert report["shapes"]["pixel_values_videos"] == [1, 4, 3, 32, 32]  # 1 s at 30 fps sampled at 4 fps
    assert report["shapes"]["input_ids"] == [1, 1 + K]


def test_decode_passthrough_and_input_names(processor):
    ids = processor(text="hi <motion> there", motions=np.load(JOINTS), motion_fps=20)["input_ids"]
    assert processor.batch_decode(ids, skip_special_tokens=True) == ["hi there"]
    assert processor.decode(ids[0]).count("<motion>") == K
    assert processor.model_input_names == [
        "input_ids",
        "attention_mask",
        "guidance_mask",
        "pixel_values_videos",
        "frame_mask",
        "frame_timestamps",
        "motion_values",
        "motion_mask",
    ]
