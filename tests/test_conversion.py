"""Weight conversion: MotionLLM (lit-gpt + LoRA + projector) and table-driven LLaVA-family layouts.

The lit-gpt side is a reference implementation written here from the layout description (lit_gpt/model.py and
lit_gpt/lora.py of MotionLLM's vendored lit_gpt, and lit-gpt after PR #900), not copied from it:
- fused `attn.attn` rows: for each query group, its q heads, then its k head, then its v head;
- LoRA: `lora_A` stacks r rows per enabled part (q, then v), `lora_B` stacks the parts' output rows; part i of
  B multiplies part i of A (a grouped 1x1 convolution), the result is scaled by alpha / r and scattered into
  the fused output at `lora_ind` (contiguous ranges before PR #900, the true interleaved rows after it).
"""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conversion.convert_motionllm import (
    MOTIONLLM_SYSTEM,
    MOTIONLLM_SYSTEM_NO_INPUT,
    convert_motionllm,
)
from conversion.convert_motionllm import (
    main as motionllm_main,
)
from conversion.llava_layout import (
    KEY_MAPS_DIR,
    ConversionError,
    KeyTable,
    QKVLayout,
    apply_table,
    available_tables,
    convert_llava_checkpoint,
    load_tensor_file,
)
from modeling_llamo import LlamoForConditionalGeneration

peft = pytest.importorskip("peft")

N_EMBD, N_LAYER, INTERMEDIATE = 32, 2, 48
WORDS = (  # noqa: SIM905
    "A chat between a curious user and an artificial intelligence assistant , paired with input that provides "
    "further context . The gives helpful detailed polite answers to the 's questions USER : ASSISTANT "
    "INPUT_VIDEO what is person doing ? walking running jumping"
).split()
RANK, ALPHA = 4, 8.0
VISION_HIDDEN = PROJ_WIDTH = 16


# ----------------------------------------------------------------------------------------------------------------
# Fixtures: tiny tokenizer, CLIP tower, lit-gpt weights, LoRA, projector
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    while len(vocab) < 64:
        vocab[f"w{len(vocab)}"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>")
    path = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(1)
    config = CLIPVisionConfig(hidden_size=VISION_HIDDEN, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16)
    path = tmp_path_factory.mktemp("clip")
    CLIPVisionModel(config).save_pretrained(path)
    return str(path)


def make_litgpt_weights(n_head, n_groups, vocab=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hs = N_EMBD // n_head
    fused = (n_head + 2 * n_groups) * hs

    def rand(*shape, scale=0.15):
        return torch.randn(*shape, generator=gen) * scale

    sd = {"transformer.wte.weight": rand(vocab, N_EMBD, scale=1.0), "transformer.ln_f.weight": 1 + rand(N_EMBD),
          "lm_head.weight": rand(vocab, N_EMBD, scale=0.3)}
    for i in range(N_LAYER):
        h = f"transformer.h.{i}."
        sd[h + "norm_1.weight"] = 1 + rand(N_EMBD)
        sd[h + "norm_2.weight"] = 1 + rand(N_EMBD)
        sd[h + "attn.attn.weight"] = rand(fused, N_EMBD, scale=0.3)
        sd[h + "attn.proj.weight"] = rand(N_EMBD, N_EMBD)
        sd[h + "mlp.fc_1.weight"] = rand(INTERMEDIATE, N_EMBD)
        sd[h + "mlp.fc_2.weight"] = rand(INTERMEDIATE, N_EMBD)
        sd[h + "mlp.proj.weight"] = rand(N_EMBD, INTERMEDIATE)
    return sd


def make_lora(n_head, n_groups, seed=1):
    gen = torch.Generator().manual_seed(seed)
    kv = n_groups * (N_EMBD // n_head)
    return {
        **{f"transformer.h.{i}.attn.attn.lora_A": torch.randn(2 * RANK, N_EMBD, generator=gen) * 0.3 for i in range(N_LAYER)},
        **{f"transformer.h.{i}.attn.attn.lora_B": torch.randn(N_EMBD + kv, RANK, generator=gen) * 0.3 for i in range(N_LAYER)},
    }


def make_projector(seed=2):
    gen = torch.Generator().manual_seed(seed)
    return {"0.weight": torch.randn(N_EMBD, PROJ_WIDTH, generator=gen), "0.bias": torch.randn(N_EMBD, generator=gen),
            "2.weight": torch.randn(N_EMBD, N_EMBD, generator=gen), "2.bias": torch.randn(N_EMBD, generator=gen)}


def write_release(folder, n_head=4, n_groups=2, base=None, lora=None, projector=None):
    """MotionLLM-style release files: lit_model.pth, lora.pth (bf16 as released, here fp32 for 1e-5), linear.pth."""
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, value in (("lit_model.pth", base if base is not None else make_litgpt_weights(n_head, n_groups)),
                        ("lora.pth", lora if lora is not None else make_lora(n_head, n_groups)),
                        ("linear.pth", projector if projector is not None else make_projector())):
        paths[name] = os.path.join(folder, name)
        torch.save(value, paths[name])
    return paths


# ----------------------------------------------------------------------------------------------------------------
# Reference lit-gpt forward (fused QKV + LoRA as lit-gpt computes it)
# ----------------------------------------------------------------------------------------------------------------


def reference_lora_ind(n_head, n_groups, hs, index_layout):
    n_embd, kv = n_head * hs, n_groups * hs
    fused = (n_head + 2 * n_groups) * hs
    if index_layout == "contiguous":  # MotionLLM's vendored lit_gpt: q then v as plain ranges
        return list(range(n_embd)) + list(range(n_embd + kv, fused))
    q_per_kv = n_head // n_groups
    group = (q_per_kv + 2) * hs
    q_rows = [g * group + j * hs + d for g in range(n_groups) for j in range(q_per_kv) for d in range(hs)]
    v_rows = [g * group + (q_per_kv + 1) * hs + d for g in range(n_groups) for d in range(hs)]
    return q_rows + v_rows


def rms_norm(x, weight, eps=1e-5):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope(x, positions, hs, base=10000.0):
    theta = 1.0 / (base ** (torch.arange(0, hs, 2).float() / hs))
    angles = torch.outer(positions.float(), theta).repeat(1, 2)
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return x * angles.cos() + torch.cat((-x2, x1), dim=-1) * angles.sin()


def litgpt_logits(sd, ids, n_head, n_groups, lora=None, index_layout="contiguous", r=RANK, alpha=ALPHA):
    hs = N_EMBD // n_head
    q_per_kv = n_head // n_groups
    batch, length = ids.shape
    x = sd["transformer.wte.weight"][ids]
    positions = torch.arange(length)
    for i in range(N_LAYER):
        h = f"transformer.h.{i}."
        n1 = rms_norm(x, sd[h + "norm_1.weight"])
        qkv = n1 @ sd[h + "attn.attn.weight"].T
        if lora is not None:
            a, b = lora[h + "attn.attn.lora_A"], lora[h + "attn.attn.lora_B"]
            after_a = n1 @ a.T
            sizes = [N_EMBD, n_groups * hs]
            after_b = torch.cat([chunk @ part.T for chunk, part in zip(after_a.chunk(2, dim=-1), b.split(sizes))], -1)
            padded = torch.zeros_like(qkv)
            padded[..., reference_lora_ind(n_head, n_groups, hs, index_layout)] = after_b
            qkv = qkv + padded * (alpha / r)
        qkv = qkv.view(batch, length, n_groups, q_per_kv + 2, hs).permute(0, 2, 3, 1, 4)
        q, k, v = qkv.split((q_per_kv, 1, 1), dim=2)
        k = k.expand(batch, n_groups, q_per_kv, length, hs)
        v = v.expand(batch, n_groups, q_per_kv, length, hs)
        q, k, v = (t.reshape(batch, n_head, length, hs) for t in (q, k, v))
        q, k = rope(q, positions, hs), rope(k, positions, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + y.transpose(1, 2).reshape(batch, length, N_EMBD) @ sd[h + "attn.proj.weight"].T
        n2 = rms_norm(x, sd[h + "norm_2.weight"])
        mlp = F.silu(n2 @ sd[h + "mlp.fc_1.weight"].T) * (n2 @ sd[h + "mlp.fc_2.weight"].T)
        x = x + mlp @ sd[h + "mlp.proj.weight"].T
    return rms_norm(x, sd["transformer.ln_f.weight"]) @ sd["lm_head.weight"].T


IDS = torch.tensor([[1, 5, 9, 3, 17, 22, 40, 7, 63, 11], [1, 30, 2, 8, 8, 19, 50, 33, 12, 6]])


def convert(paths, out, tokenizer_dir, clip_dir, **kwargs):
    kwargs.setdefault("num_heads", 4)
    kwargs.setdefault("lora_alpha", ALPHA)
    kwargs.setdefault("num_key_frames", 4)
    return convert_motionllm(out, lit_checkpoint=paths["lit_model.pth"], lora=paths["lora.pth"],
                             projector=paths["linear.pth"], vision_tower=clip_dir, tokenizer=tokenizer_dir, **kwargs)


def load(out):
    return LlamoForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()


# ----------------------------------------------------------------------------------------------------------------
# MotionLLM: numerics
# ----------------------------------------------------------------------------------------------------------------


def test_reference_distinguishes_lora_index_layouts():
    """The two zero-padding orders really differ (so the tests below pin down which one the converter uses)."""
    base, lora = make_litgpt_weights(4, 2), make_lora(4, 2)
    contiguous = litgpt_logits(base, IDS, 4, 2, lora, "contiguous")
    interleaved = litgpt_logits(base, IDS, 4, 2, lora, "interleaved")
    plain = litgpt_logits(base, IDS, 4, 2)
    assert (contiguous - interleaved).abs().max() > 1e-2
    assert (contiguous - plain).abs().max() > 1e-2


@pytest.mark.parametrize("n_head,n_groups", [(4, 2), (4, 4)])  # grouped-query and multi-head attention
@pytest.mark.parametrize("index_layout", ["contiguous", "interleaved"])
def test_adapter_and_merged_match_litgpt(tmp_path, tokenizer_dir, clip_dir, n_head, n_groups, index_layout):
    from peft import PeftModel

    paths = write_release(tmp_path / "release", n_head, n_groups)
    base, lora = torch.load(paths["lit_model.pth"]), torch.load(paths["lora.pth"])
    expected = litgpt_logits(base, IDS, n_head, n_groups, lora, index_layout)
    base_only = litgpt_logits(base, IDS, n_head, n_groups)

    report = convert(paths, tmp_path / "adapter", tokenizer_dir, clip_dir, lora_index_layout=index_layout)
    model = load(tmp_path / "adapter")
    with torch.no_grad():
        plain = model(input_ids=IDS).logits[..., :64]
        torch.testing.assert_close(plain, base_only, atol=1e-5, rtol=1e-5)  # base alone: lit-gpt without LoRA
        adapted = PeftModel.from_pretrained(model, tmp_path / "adapter" / "adapter").eval()
        torch.testing.assert_close(adapted(input_ids=IDS).logits[..., :64], expected, atol=1e-5, rtol=1e-5)

    if index_layout == "interleaved":  # lit-gpt >= PR #900: a plain q/v adapter
        assert report["lora"]["peft_targets"] == ["q_proj", "v_proj"] and report["lora"]["peft_r"] == RANK
    else:  # MotionLLM's vendored lit_gpt: the updates land on q, k and v rows
        assert report["lora"]["peft_targets"] == ["k_proj", "q_proj", "v_proj"] and report["lora"]["peft_r"] == 2 * RANK
    assert report["lora"]["peft_lora_alpha"] / report["lora"]["peft_r"] == pytest.approx(ALPHA / RANK)

    convert(paths, tmp_path / "merged", tokenizer_dir, clip_dir, lora_index_layout=index_layout, merge_lora=True)
    assert not (tmp_path / "merged" / "adapter").exists()
    with torch.no_grad():
        merged = load(tmp_path / "merged")(input_ids=IDS).logits[..., :64]
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)


def test_transformers_format_base(tmp_path, tokenizer_dir, clip_dir):
    """The original Vicuna in transformers format works as the base too (same LoRA semantics)."""
    from peft import PeftModel
    from transformers import LlamaConfig, LlamaForCausalLM

    paths = write_release(tmp_path / "release")
    base, lora = torch.load(paths["lit_model.pth"]), torch.load(paths["lora.pth"])
    mapped = apply_table(base, KeyTable.load("litgpt_llama"), {"qkv_layout": QKVLayout(4, 2, N_EMBD // 4)})
    hf_state = {k.replace("model.language_model.", "model."): v for k, v in mapped.tensors.items()}
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=N_EMBD, intermediate_size=INTERMEDIATE, num_hidden_layers=N_LAYER,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=64, rms_norm_eps=1e-5,
                                         tie_word_embeddings=False))
    llama.load_state_dict(hf_state, strict=True)
    llama.save_pretrained(tmp_path / "vicuna")
    report = convert_motionllm(tmp_path / "out", hf_checkpoint=tmp_path / "vicuna", lora=paths["lora.pth"],
                               projector=paths["linear.pth"], vision_tower=clip_dir, tokenizer=tokenizer_dir,
                               lora_alpha=ALPHA, num_key_frames=4)
    assert report["base"]["format"] == "transformers" and report["base"]["unexpected"] == []
    model = PeftModel.from_pretrained(load(tmp_path / "out"), tmp_path / "out" / "adapter").eval()
    with torch.no_grad():
        logits = model(input_ids=IDS).logits[..., :64]
    torch.testing.assert_close(logits, litgpt_logits(base, IDS, 4, 2, lora, "contiguous"), atol=1e-5, rtol=1e-5)


def test_released_shapes_hint(tmp_path):
    """lora_B of MotionLLM-7B is (8192, 64): q rows (4096) + v rows (4096) for r=64 on a 32-head MHA model."""
    from conversion.convert_motionllm import litgpt_lora_to_projections

    layout = QKVLayout(n_head=32, n_query_groups=32, head_size=128)
    a, b = torch.randn(128, 4096), torch.randn(8192, 64)
    contiguous = litgpt_lora_to_projections(a, b, layout, 64, (True, False, True), "contiguous")
    assert sorted(contiguous) == ["k", "q", "v"] and contiguous["q"][1].shape == (4096, 128)
    interleaved = litgpt_lora_to_projections(a, b, layout, 64, (True, False, True), "interleaved")
    assert sorted(interleaved) == ["q", "v"]
    assert torch.equal(interleaved["q"][1], b[:4096]) and torch.equal(interleaved["v"][0], a[64:])


def test_projector_maps_exactly(tmp_path, tokenizer_dir, clip_dir):
    paths = write_release(tmp_path / "release")
    report = convert(paths, tmp_path / "out", tokenizer_dir, clip_dir)
    model = load(tmp_path / "out")
    source = torch.load(paths["linear.pth"])
    projector = model.model.multi_modal_projector
    assert torch.equal(projector.linear_1.weight, source["0.weight"]) and torch.equal(projector.linear_1.bias, source["0.bias"])
    assert torch.equal(projector.linear_2.weight, source["2.weight"]) and torch.equal(projector.linear_2.bias, source["2.bias"])
    reference = torch.nn.Sequential(torch.nn.Linear(PROJ_WIDTH, N_EMBD), torch.nn.GELU(), torch.nn.Linear(N_EMBD, N_EMBD))
    reference.load_state_dict(source)
    x = torch.randn(3, PROJ_WIDTH)
    with torch.no_grad():
        torch.testing.assert_close(projector(x), reference(x), atol=0, rtol=0)
    assert model.config.hidden_size == PROJ_WIDTH and model.config.projector_hidden_act == "gelu"
    # frame features reach the streams unchanged (vision width == hidden_size): identity frame projection
    assert torch.equal(model.model.frame_encoder.proj.weight, torch.eye(PROJ_WIDTH))
    assert report["projector"]["consumed"] == 4 and report["projector"]["unexpected"] == []
    assert "model.cross_talker." in report["initialised_new"]
    assert report["base"]["consumed"] == report["base"]["keys"] and report["lora"]["consumed"] == 2 * N_LAYER
    # the vision tower is the given CLIP model, bit for bit
    from transformers import CLIPVisionModel

    clip = CLIPVisionModel.from_pretrained(clip_dir)
    for name, value in clip.state_dict().items():
        if "position_ids" not in name:
            assert torch.equal(model.model.frame_encoder.vision_tower.state_dict()[name], value), name
    saved = json.loads((tmp_path / "out" / "conversion_report.json").read_text())
    assert saved["lora"]["index_layout"] == "contiguous"


# ----------------------------------------------------------------------------------------------------------------
# MotionLLM: refusals, each named
# ----------------------------------------------------------------------------------------------------------------


def _refused(tmp_path, tokenizer_dir, clip_dir, name, **release):
    paths = write_release(tmp_path / "release", **release)
    out = tmp_path / "out"
    with pytest.raises(ConversionError) as info:
        convert(paths, out, tokenizer_dir, clip_dir)
    assert name in str(info.value)
    assert not out.exists(), "nothing may be written when a check fails"
    return info.value


def test_missing_key_is_reported(tmp_path, tokenizer_dir, clip_dir):
    base = make_litgpt_weights(4, 2)
    del base["transformer.h.1.mlp.fc_2.weight"]
    error = _refused(tmp_path, tokenizer_dir, clip_dir, "transformer.h.1.mlp.fc_2.weight", base=base)
    assert any("missing" in p for p in error.problems)


def test_extra_key_is_reported(tmp_path, tokenizer_dir, clip_dir):
    lora = make_lora(4, 2)
    lora["transformer.h.0.mlp.fc_1.lora_A"] = torch.zeros(RANK, N_EMBD)
    _refused(tmp_path, tokenizer_dir, clip_dir, "transformer.h.0.mlp.fc_1.lora_A", lora=lora)
    base = make_litgpt_weights(4, 2)
    base["transformer.h.0.attn.bogus"] = torch.zeros(3)
    _refused(tmp_path / "b", tokenizer_dir, clip_dir, "transformer.h.0.attn.bogus", base=base)


def test_misshaped_keys_are_reported(tmp_path, tokenizer_dir, clip_dir):
    lora = make_lora(4, 2)
    lora["transformer.h.1.attn.attn.lora_B"] = torch.zeros(N_EMBD, RANK)
    error = _refused(tmp_path, tokenizer_dir, clip_dir, "transformer.h.1.attn.attn.lora_B", lora=lora)
    assert any("mis-shaped" in p for p in error.problems)
    projector = make_projector()
    projector["2.weight"] = torch.zeros(N_EMBD, N_EMBD + 1)
    _refused(tmp_path / "p", tokenizer_dir, clip_dir, "2.weight", projector=projector)
    base = make_litgpt_weights(4, 2)
    base["transformer.h.0.mlp.proj.weight"] = torch.zeros(N_EMBD, INTERMEDIATE + 2)
    _refused(tmp_path / "b", tokenizer_dir, clip_dir, "transformer.h.0.mlp.proj.weight", base=base)


class NotATensor:
    pass


def test_pickles_with_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": NotATensor()}, path)
    with pytest.raises(ConversionError, match="refused to unpickle"):
        load_tensor_file(path)
    path = tmp_path / "training_state.pth"
    torch.save({"weight": torch.zeros(2), "step": 3}, path)
    with pytest.raises(ConversionError, match="step"):
        load_tensor_file(path)
    torch.save({"model": {"weight": torch.ones(2)}}, path)
    assert torch.equal(load_tensor_file(path)["weight"], torch.ones(2))


# ----------------------------------------------------------------------------------------------------------------
# MotionLLM: the saved folder loads, prompts like MotionLLM, and generates
# ----------------------------------------------------------------------------------------------------------------


def test_converted_folder_loads_prompts_and_generates(tmp_path, tokenizer_dir, clip_dir):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    paths = write_release(tmp_path / "release")
    out = tmp_path / "out"
    report = convert(paths, out, tokenizer_dir, clip_dir)
    assert report["tokenizer"]["motion_token_id"] == 64 and report["llamo_config"]["vocab_size"] == 65
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).eval()
    assert model.config.motion_token_id == processor.motion_token_id == 64
    # the new <motion> rows are the mean of the old ones (mean-resizing)
    embed = model.get_input_embeddings().weight
    torch.testing.assert_close(embed[64], embed[:64].mean(0))

    video = np.random.default_rng(0).integers(0, 255, size=(12, 40, 48, 3), dtype=np.uint8)
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is the person doing ?"},
                                             {"type": "video", "video": video}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    plain = text.replace("<|instruction|>", "").replace("<|/instruction|>", "")
    assert plain == f"<s>{MOTIONLLM_SYSTEM} USER: what is the person doing ? \n INPUT_VIDEO: <motion>. ASSISTANT: "
    text_only = processor.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text_only.replace("<|instruction|>", "").replace("<|/instruction|>", "") == f"<s>{MOTIONLLM_SYSTEM_NO_INPUT} USER: hi ASSISTANT: "

    inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True,
                                           processor_kwargs={"input_fps": 6})
    assert int((inputs["input_ids"] == 64).sum()) == 4 and int((inputs["input_ids"] == 1).sum()) == 1
    assert inputs["pixel_values_videos"].shape[1] == 8  # MotionLLM's 8 frames
    model = PeftModel.from_pretrained(model, out / "adapter").eval()
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, inputs["input_ids"].shape[1] + 3)


def test_cli(tmp_path, tokenizer_dir, clip_dir, capsys):
    paths = write_release(tmp_path / "release")
    with pytest.raises(SystemExit) as exit_info:
        motionllm_main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--lit-checkpoint" in help_text and "--merge-lora" in help_text and "--lora-index-layout" in help_text
    report = motionllm_main([
        "--lit-checkpoint", paths["lit_model.pth"], "--lora", paths["lora.pth"], "--projector", paths["linear.pth"],
        "--vision-tower", clip_dir, "--tokenizer", tokenizer_dir, "--num-heads", "4", "--lora-alpha", str(ALPHA),
        "--num-key-frames", "4", "--dry-run",
    ])
    assert report["output_dir"] is None and report["lora"]["peft_r"] == 2 * RANK


# ----------------------------------------------------------------------------------------------------------------
# Table-driven LLaVA-family conversion
# ----------------------------------------------------------------------------------------------------------------


def to_llava_layout(state_dict):
    """A llamo state dict written back in LLaVA's training names (motion modules left out)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith("model.language_model."):
            out["model." + key[len("model.language_model."):]] = value
        elif key.startswith("model.multi_modal_projector.linear_1."):
            out["model.mm_projector.0." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("model.multi_modal_projector.linear_2."):
            out["model.mm_projector.2." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("model.frame_encoder.vision_tower."):
            out["model.vision_tower.vision_tower.vision_model." + key[len("model.frame_encoder.vision_tower."):]] = value
        elif key == "lm_head.weight":
            out[key] = value
    out["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)  # old LLaVA checkpoints carry it
    return out


@pytest.fixture(scope="module")
def llava_source():
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    config = tiny_config()
    model = LlamoForConditionalGeneration(config).eval()
    return config, model


def test_llava_table_conversion(tmp_path, llava_source):
    config, model = llava_source
    source = to_llava_layout(model.state_dict())
    torch.save(source, tmp_path / "pytorch_model.bin")
    config.save_pretrained(tmp_path / "config")
    report = convert_llava_checkpoint(tmp_path / "pytorch_model.bin", tmp_path / "config", tmp_path / "out")
    assert report["source"]["consumed"] + len(report["source"]["dropped"]) == len(source)
    assert "model.cross_talker." in report["initialised_new"]
    converted = load(tmp_path / "out")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(converted(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6, rtol=0)
    for name in ("multi_modal_projector.linear_2.weight", "frame_encoder.vision_tower.embeddings.patch_embedding.weight"):
        assert torch.equal(converted.model.get_parameter(name), model.model.get_parameter(name))
    assert torch.count_nonzero(converted.model.text_gate.gate) == 0  # fresh modules initialised like a new model


def test_llava_new_table_and_reporting(tmp_path, llava_source):
    config, model = llava_source
    config.save_pretrained(tmp_path / "config")
    source = to_llava_layout(model.state_dict())
    # An unknown key is refused by name, or reported when allowed.
    torch.save({**source, "model.some_new_module.weight": torch.zeros(2)}, tmp_path / "extra.pth")
    with pytest.raises(ConversionError, match="model.some_new_module.weight"):
        convert_llava_checkpoint(tmp_path / "extra.pth", tmp_path / "config", None)
    report = convert_llava_checkpoint(tmp_path / "extra.pth", tmp_path / "config", None, allow_unexpected=True)
    assert report["source"]["unexpected"] == ["model.some_new_module.weight"]
    # A mis-shaped or missing key is refused by its llamo name.
    broken = dict(source)
    broken["model.mm_projector.2.weight"] = torch.zeros(3, 3)
    del broken["model.norm.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ConversionError) as info:
        convert_llava_checkpoint(tmp_path / "broken.pth", tmp_path / "config", None)
    assert "model.multi_modal_projector.linear_2.weight" in str(info.value)
    assert "model.language_model.norm.weight" in str(info.value)
    # Another layout is one new table (a JSON file), e.g. a layout that names the LM `llm.*`.
    renamed = {k.replace("model.", "llm.", 1) if k.startswith("model.layers") or k in ("model.embed_tokens.weight", "model.norm.weight") else k: v
               for k, v in source.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    table = json.loads((KEY_MAPS_DIR / "llava_llama.json").read_text())
    table["name"] = "my_layout"
    table["rules"] = [{**rule, "source": rule["source"].replace("model\\.layers", "llm\\.layers")
                       .replace("model\\.embed_tokens", "llm\\.embed_tokens").replace("model\\.norm", "llm\\.norm")}
                      for rule in table["rules"]]
    (tmp_path / "my_layout.json").write_text(json.dumps(table))
    report = convert_llava_checkpoint(tmp_path / "renamed.pth", tmp_path / "config", None, table=tmp_path / "my_layout.json")
    assert report["table"] == "my_layout" and report["source"]["unexpected"] == []
    assert {"llava_llama", "litgpt_llama", "hf_llama"} <= set(available_tables())
