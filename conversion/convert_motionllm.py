"""Convert MotionLLM-7B's released weights (IDEA-Research/MotionLLM) into a llamo checkpoint.

MotionLLM ships (facts read from github.com/IDEA-Research/MotionLLM, whose `lit_gpt/` folder is a vendored
copy of Lightning-AI/lit-gpt that its `app.py` / `CLI.py` import):

- a Vicuna-7B-v1.5 base in lit-gpt format (`checkpoints/vicuna-7b-v1.5/lit_model.pth`), or the same model in
  transformers format (`lmsys/vicuna-7b-v1.5`). lit-gpt keys: `transformer.wte.weight`,
  `transformer.h.{i}.norm_1.weight`, `transformer.h.{i}.attn.attn.weight` (q, k and v fused and interleaved per
  query group: the group's q heads, then its k head, then its v head; `lit_gpt/model.py`
  `CausalSelfAttention.forward` views the output as `(n_query_groups, q_per_kv + 2, head_size)`),
  `attn.proj.weight`, `norm_2.weight`, `mlp.fc_1/fc_2/proj.weight` (`LLaMAMLP`: `proj(silu(fc_1(x)) * fc_2(x))`,
  so fc_1 = gate_proj, fc_2 = up_proj, proj = down_proj), `transformer.ln_f.weight`, `lm_head.weight`. Rotary
  embeddings are rotate-half with base 10000 over the whole head, as in transformers' Llama, so q/k rows need
  no permutation.
- `lora.pth` (bf16): LoRA on the fused QKV with query and value enabled (`to_query=True, to_key=False,
  to_value=True`), r=64, alpha=16, dropout 0.05 (`options/option.py`). Per layer `transformer.h.{i}.attn.attn.lora_A`
  `(2r, 4096)` (r rows for q, then r for v) and `lora_B` `(4096 + 4096, r)` (q rows, then v rows); lit-gpt
  applies them as a grouped 1x1 convolution (q rows of B with the q rows of A, v with v), scales by alpha/r and
  scatters the result into the fused QKV output at `lora_ind`.
- `linear.pth` (fp32): the video projector `Linear(1024, 4096) - GELU - Linear(4096, 4096)`, keys `0.*`, `2.*`.
- a LanguageBind video tower (not a stock transformers class) and its prompt (see `MOTIONLLM_CHAT_TEMPLATE`).

**The LoRA index layout matters.** MotionLLM's vendored `lit_gpt/lora.py` predates lit-gpt PR #900
("Fix LoRA indices for interleaved QKV weights", issue #891): its `lora_ind` is *contiguous* (q updates go to
fused rows `[0, 4096)`, v updates to rows `[4096 + kv, end)`), while the fused weight is *interleaved*. So the
released adapter, as MotionLLM trained and ran it, changes rows of q, k **and** v projections. The default
`lora_index_layout="contiguous"` reproduces that exactly: the peft adapter then targets `q_proj`, `k_proj` and
`v_proj` with rank 2r (A = [A_q; A_v], B block-structured, same alpha/r scaling). `"interleaved"` gives the
semantics of lit-gpt after PR #900, where the update lands on q and v only: a plain r=64, alpha=16 adapter
on `q_proj`/`v_proj`. Either way the adapter stores the released tensors unchanged (copied, never rescaled).

What the converted llamo checkpoint warm-starts: the language model (Vicuna + MotionLLM's LoRA, as a peft
adapter in `<output>/adapter` or merged), the `multi_modal_projector` (MotionLLM's projector, mapped exactly:
llamo's `hidden_size` is set to the projector's input width, 1024), the vision tower (any CLIP-family model
the user names), and `frame_encoder.proj` as an identity when the vision width equals `hidden_size`. New
(initialised as a fresh model would be): motion encoder, motion estimator, feature enhancer, Cross Talker and
the text gate (zero-initialised, so the language model's behaviour is untouched until trained). MotionLLM's
LanguageBind tower and its motion VQ-VAE path are not converted (the latter was never released).

Command line: `python -m conversion.convert_motionllm --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .llava_layout import (
    ConversionError,
    KeyTable,
    QKVLayout,
    apply_table,
    build_llamo_model,
    load_tensor_file,
    load_tokenizer_with_motion_token,
    load_vision_tower,
    load_weights,
    resolve_dtype,
    save_processor,
)

MOTIONLLM_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant, paired with an input that provides "
    "further context. The assistant gives helpful, detailed, and polite answers to the user's questions."
)
"""MotionLLM's system sentence when an input (video) is given (`generate_prompt_mlp`)."""

MOTIONLLM_SYSTEM_NO_INPUT = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions."
)
"""Its sentence for text-only prompts (the other branch of `generate_prompt_mlp`)."""

# MotionLLM's inference prompt (app.py / CLI.py): "<s>" + SYSTEM + " USER: {question} \n" + "INPUT_VIDEO: " +
# <video embeddings> + ". ASSISTANT: " (three separately tokenised pieces), i.e. the text
# "<s>SYSTEM USER: {question} \n INPUT_VIDEO: <video>. ASSISTANT: ". Here the one `<motion>` marker per clip
# stands where the video embeddings went (the processor expands it into K placeholders). Clip pairing follows
# `LLAMO_CHAT_TEMPLATE` (a video block directly followed by a motion block, or one block with both keys, is one
# clip), so `LlamoProcessor` collects the same clips. The user's words are wrapped in instruction markers (the
# processor strips them and marks those tokens as Cross Talker guidance); answers are `{% generation %}` blocks
# ending with EOS, Vicuna style ("ASSISTANT: {answer}</s>USER: ..."). A system message replaces the sentence.
MOTIONLLM_CHAT_TEMPLATE = (
    "{#- MotionLLM / Vicuna-v1.5 prompt for llamo checkpoints converted from MotionLLM. One <motion> marker per"
    " clip goes where MotionLLM put its video embeddings. -#}\n"
    "{%- set ns = namespace(system=none, media=false, first=true) -%}\n"
    "{%- for message in messages -%}\n"
    "{%- if message['content'] is not string -%}{%- for block in message['content'] -%}"
    "{%- if block['type'] in ['video', 'motion'] -%}{%- set ns.media = true -%}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}\n"
    "{%- if message['role'] == 'system' -%}{%- if message['content'] is string -%}"
    "{%- set ns.system = message['content'] -%}{%- else -%}"
    "{%- set ns.system = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ') -%}"
    "{%- endif -%}{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{{- bos_token -}}\n"
    "{%- if ns.system is not none -%}{{- ns.system -}}\n"
    "{%- elif ns.media -%}{{- '" + MOTIONLLM_SYSTEM.replace("'", "\\'") + "' -}}\n"
    "{%- else -%}{{- '" + MOTIONLLM_SYSTEM_NO_INPUT.replace("'", "\\'") + "' -}}{%- endif -%}\n"
    "{%- for message in messages if message['role'] != 'system' -%}\n"
    "{%- if message['content'] is string -%}{%- set blocks = [{'type': 'text', 'text': message['content']}] -%}\n"
    "{%- else -%}{%- set blocks = message['content'] -%}{%- endif -%}\n"
    "{%- if message['role'] == 'assistant' -%}\n"
    "{{- ' ASSISTANT: ' -}}\n"
    "{%- generation -%}\n"
    "{{- blocks | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ') -}}{{- eos_token -}}\n"
    "{%- endgeneration -%}\n"
    "{%- else -%}\n"
    "{%- set turn = namespace(texts=[], media='', open=none) -%}\n"
    "{%- for block in blocks -%}\n"
    "{%- if block['type'] in ['video', 'motion'] -%}\n"
    "{%- set both = 'video' in block and 'motion' in block -%}\n"
    "{%- if turn.open is not none and turn.open != block['type'] and not both -%}{%- set turn.open = none -%}\n"
    "{%- else -%}{%- set turn.media = turn.media + ' \\n INPUT_VIDEO: <motion>.' -%}"
    "{%- set turn.open = none if both else block['type'] -%}{%- endif -%}\n"
    "{%- elif block['type'] == 'text' -%}{%- set turn.open = none -%}{%- set turn.texts = turn.texts + [block['text']] -%}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{{- (' ' if ns.first else '') + 'USER: ' -}}\n"
    "{%- if turn.texts -%}{{- '<|instruction|>' + turn.texts | join(' ') + '<|/instruction|>' -}}{%- endif -%}\n"
    "{{- turn.media -}}\n"
    "{%- endif -%}\n"
    "{%- set ns.first = false -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- ' ASSISTANT: ' -}}{%- endif -%}\n"
)

VICUNA_7B_TEXT_CONFIG = {
    "model_type": "llama",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 4096,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
}
"""lmsys/vicuna-7b-v1.5's config values that lit-gpt weights cannot tell (sizes come from the tensors)."""

NEW_MODULES = [
    "model.frame_encoder.proj.",
    "model.motion_encoder.",
    "model.motion_estimator.",
    "model.enhancer.",
    "model.cross_talker.",
    "model.text_gate.",
]
LORA_KEY = re.compile(r"transformer\.h\.(\d+)\.attn\.attn\.lora_(A|B)")
PROJECTOR_KEY = re.compile(r"(?:model\.)?(?:mm_projector\.)?([02])\.(weight|bias)")
PROJECTIONS = ("q", "k", "v")


# ----------------------------------------------------------------------------------------------------------------
# lit-gpt layout
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LitGPTArchitecture:
    n_layer: int
    n_embd: int
    n_head: int
    n_query_groups: int
    intermediate_size: int
    vocab_size: int
    bias: bool = False

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def qkv(self) -> QKVLayout:
        return QKVLayout(self.n_head, self.n_query_groups, self.head_size)

    def expected_shapes(self) -> dict[str, tuple]:
        shapes = {"transformer.wte.weight": (self.vocab_size, self.n_embd), "transformer.ln_f.weight": (self.n_embd,),
                  "lm_head.weight": (self.vocab_size, self.n_embd)}
        for i in range(self.n_layer):
            h = f"transformer.h.{i}."
            shapes[h + "norm_1.weight"] = (self.n_embd,)
            shapes[h + "norm_2.weight"] = (self.n_embd,)
            shapes[h + "attn.attn.weight"] = (self.qkv.fused_rows, self.n_embd)
            shapes[h + "attn.proj.weight"] = (self.n_embd, self.n_embd)
            shapes[h + "mlp.fc_1.weight"] = (self.intermediate_size, self.n_embd)
            shapes[h + "mlp.fc_2.weight"] = (self.intermediate_size, self.n_embd)
            shapes[h + "mlp.proj.weight"] = (self.n_embd, self.intermediate_size)
            if self.bias:
                shapes[h + "attn.attn.bias"] = (self.qkv.fused_rows,)
        return shapes

    def text_config(self, overrides: dict | None = None) -> dict:
        config = dict(VICUNA_7B_TEXT_CONFIG)
        config.update(
            hidden_size=self.n_embd, intermediate_size=self.intermediate_size, num_hidden_layers=self.n_layer,
            num_attention_heads=self.n_head, num_key_value_heads=self.n_query_groups, vocab_size=self.vocab_size,
            attention_bias=self.bias, head_dim=self.head_size,
        )
        config.update(overrides or {})
        return config


def infer_litgpt_architecture(state_dict: dict, n_head: int, n_query_groups: int | None = None) -> LitGPTArchitecture:
    """Sizes from the tensors; the head count is not recoverable from shapes and must be given (32 for 7B)."""
    problems = [f"missing key {key}" for key in ("transformer.wte.weight", "transformer.h.0.attn.attn.weight",
                                                  "transformer.h.0.mlp.fc_1.weight") if key not in state_dict]
    if problems:
        raise ConversionError("Not a lit-gpt Llama checkpoint", problems)
    vocab_size, n_embd = state_dict["transformer.wte.weight"].shape
    layers = {int(m.group(1)) for key in state_dict if (m := re.match(r"transformer\.h\.(\d+)\.", key))}
    n_layer = max(layers) + 1
    if n_embd % n_head:
        raise ConversionError(f"hidden size {n_embd} is not divisible by num_heads={n_head}; pass the right --num-heads.")
    head_size = n_embd // n_head
    fused = state_dict["transformer.h.0.attn.attn.weight"].shape[0]
    groups2 = fused // head_size - n_head
    inferred_groups = groups2 // 2 if fused % head_size == 0 and groups2 > 0 and groups2 % 2 == 0 else None
    if n_query_groups is None:
        n_query_groups = inferred_groups
    if n_query_groups is None or inferred_groups != n_query_groups or n_head % n_query_groups:
        raise ConversionError(
            f"transformer.h.0.attn.attn.weight has {fused} rows, which does not fit num_heads={n_head} and "
            f"num_query_groups={n_query_groups} with head size {head_size} ((heads + 2 * groups) * head size rows)."
        )
    intermediate = state_dict["transformer.h.0.mlp.fc_1.weight"].shape[0]
    bias = "transformer.h.0.attn.attn.bias" in state_dict
    return LitGPTArchitecture(n_layer, n_embd, n_head, n_query_groups, intermediate, vocab_size, bias)


def check_shapes(state_dict: dict, expected: dict, source: str, allow_unexpected: bool = False) -> list[str]:
    """Missing, extra and mis-shaped keys of `state_dict`, each named; extra ones returned if allowed."""
    problems = [f"{source}: missing key {key} (expected shape {shape})" for key, shape in expected.items()
                if key not in state_dict]
    problems += [f"{source}: mis-shaped key {key}: got {tuple(state_dict[key].shape)}, expected {shape}"
                 for key, shape in expected.items() if key in state_dict and tuple(state_dict[key].shape) != shape]
    extra = [key for key in state_dict if key not in expected]
    if not allow_unexpected:
        problems += [f"{source}: unexpected key {key} {tuple(state_dict[key].shape)}" for key in extra]
    return problems


# ----------------------------------------------------------------------------------------------------------------
# LoRA
# ----------------------------------------------------------------------------------------------------------------


def litgpt_lora_indices(layout: QKVLayout, enabled: tuple[bool, bool, bool], index_layout: str) -> torch.Tensor:
    """Fused-QKV row that each row of lit-gpt's `lora_B` updates (lit-gpt's `lora_ind`).

    `"contiguous"`: MotionLLM's vendored lit_gpt (before lit-gpt PR #900): q rows `[0, n_embd)`, k rows
    `[n_embd, n_embd + kv)`, v rows `[n_embd + kv, end)`, ignoring the per-group interleaving.
    `"interleaved"`: lit-gpt from PR #900 on: the fused rows that really hold q, k and v, in increasing order.
    """
    n_embd = layout.n_head * layout.head_size
    kv = layout.n_query_groups * layout.head_size
    rows = torch.arange(layout.fused_rows)
    if index_layout == "contiguous":
        parts = [rows[:n_embd], rows[n_embd:n_embd + kv], rows[n_embd + kv:]]
    elif index_layout == "interleaved":
        slot = (rows // layout.head_size) % (layout.q_per_kv + 2)
        parts = [rows[slot < layout.q_per_kv], rows[slot == layout.q_per_kv], rows[slot == layout.q_per_kv + 1]]
    else:
        raise ConversionError(f"lora_index_layout must be 'contiguous' or 'interleaved', got {index_layout!r}.")
    return torch.cat([part for part, on in zip(parts, enabled) if on])


def litgpt_lora_to_projections(
    lora_a: torch.Tensor, lora_b: torch.Tensor, layout: QKVLayout, r: int, enabled: tuple[bool, bool, bool],
    index_layout: str,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Rewrites one layer's fused-QKV LoRA as LoRA pairs `(A, B)` on transformers' q/k/v projections.

    lit-gpt's update of fused row `lora_ind[j]` is `scaling * lora_B[j] @ lora_A[part(j)]`, `part(j)` being the
    enabled projection (q, k or v, in that order) whose block of `lora_B` holds row j. Each row is moved to the
    projection and row it de-interleaves to. When every projection receives rows of one part only (lit-gpt >= PR
    #900), its pair is `(A_part, B rows)` at rank r; otherwise every targeted projection gets A = all parts
    stacked (rank parts * r) and B with the other parts' columns zero. Exact either way; the scaling is unchanged.
    """
    n_parts = sum(enabled)
    n_embd = layout.n_head * layout.head_size
    kv = layout.n_query_groups * layout.head_size
    part_sizes = [size for size, on in zip((n_embd, kv, kv), enabled) if on]
    indices = litgpt_lora_indices(layout, enabled, index_layout)
    if lora_b.shape[0] != indices.numel() or sum(part_sizes) != indices.numel():
        raise ConversionError(f"lora_B has {lora_b.shape[0]} rows, expected {sum(part_sizes)}.")
    part_of_row = torch.repeat_interleave(torch.arange(n_parts), torch.tensor(part_sizes))
    group_rows = (layout.q_per_kv + 2) * layout.head_size
    group, within = indices // group_rows, indices % group_rows
    slot, offset = within // layout.head_size, within % layout.head_size
    proj = torch.where(slot < layout.q_per_kv, 0, torch.where(slot == layout.q_per_kv, 1, 2))
    row = torch.where(slot < layout.q_per_kv, (group * layout.q_per_kv + slot) * layout.head_size + offset,
                      group * layout.head_size + offset)
    out_rows = {0: n_embd, 1: kv, 2: kv}
    used = {p: sorted(set(part_of_row[proj == p].tolist())) for p in range(3) if bool((proj == p).any())}
    compact = all(len(parts) == 1 for parts in used.values())
    result = {}
    for p, parts in used.items():
        select = proj == p
        if compact:
            part = parts[0]
            b = lora_b.new_zeros(out_rows[p], r)
            b[row[select]] = lora_b[select]
            result[PROJECTIONS[p]] = (lora_a[part * r:(part + 1) * r], b)
        else:
            b = lora_b.new_zeros(out_rows[p], n_parts * r)
            for part in parts:
                chosen = select & (part_of_row == part)
                b[row[chosen], part * r:(part + 1) * r] = lora_b[chosen]
            result[PROJECTIONS[p]] = (lora_a, b)
    return result


def convert_lora(
    lora_state: dict, arch_layout: QKVLayout, n_layer: int, n_embd: int, lora_alpha: float, lora_r: int | None,
    enabled: tuple[bool, bool, bool], index_layout: str, allow_unexpected: bool, source: str,
) -> tuple[dict, dict]:
    """Per layer `{proj: (A, B)}` plus a report entry; checks every key and shape first."""
    n_parts = sum(enabled)
    if not n_parts:
        raise ConversionError("lora_targets enables none of query, key, value.")
    first = lora_state.get("transformer.h.0.attn.attn.lora_A")
    if first is None:
        raise ConversionError(f"{source}: not a lit-gpt QKV LoRA", ["missing key transformer.h.0.attn.attn.lora_A"])
    inferred_r = first.shape[0] // n_parts
    r = lora_r or inferred_r
    kv = arch_layout.n_query_groups * arch_layout.head_size
    b_rows = sum(size for size, on in zip((n_embd, kv, kv), enabled) if on)
    expected = {}
    for i in range(n_layer):
        expected[f"transformer.h.{i}.attn.attn.lora_A"] = (n_parts * r, n_embd)
        expected[f"transformer.h.{i}.attn.attn.lora_B"] = (b_rows, r)
    problems = check_shapes(lora_state, expected, source, allow_unexpected)
    if problems:
        raise ConversionError(f"{source} does not fit the base model (r={r}, {n_parts} enabled of q/k/v)", problems)
    layers = {}
    for i in range(n_layer):
        a = lora_state[f"transformer.h.{i}.attn.attn.lora_A"]
        b = lora_state[f"transformer.h.{i}.attn.attn.lora_B"]
        layers[i] = litgpt_lora_to_projections(a, b, arch_layout, r, enabled, index_layout)
    targets = sorted(layers[0]) if layers else []
    rank = layers[0][targets[0]][0].shape[0] if targets else r
    report = {
        "source": source, "keys": len(lora_state), "consumed": len(expected),
        "unexpected": [key for key in lora_state if key not in expected],
        "r": r, "alpha": lora_alpha, "scaling": lora_alpha / r, "enabled": [n for n, on in zip(PROJECTIONS, enabled) if on],
        "index_layout": index_layout, "peft_targets": [f"{p}_proj" for p in targets], "peft_r": rank,
        "peft_lora_alpha": rank * lora_alpha / r, "dtype": str(first.dtype).replace("torch.", ""),
    }
    return layers, report


def lora_module_name(layer: int, proj: str) -> str:
    return f"model.language_model.layers.{layer}.self_attn.{proj}_proj"


def save_peft_adapter(adapter_dir, layers: dict, lora_report: dict, base_path: str, dropout: float) -> None:
    """Writes a peft LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`) for the llamo model."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    os.makedirs(adapter_dir, exist_ok=True)
    targets = "|".join(lora_report["peft_targets"])
    config = LoraConfig(
        r=lora_report["peft_r"], lora_alpha=lora_report["peft_lora_alpha"], lora_dropout=dropout, bias="none",
        target_modules=rf"model\.language_model\.layers\.\d+\.self_attn\.({targets})", inference_mode=True,
        base_model_name_or_path=base_path,
    )
    config.save_pretrained(adapter_dir)
    tensors = {}
    for layer, projections in layers.items():
        for proj, (a, b) in projections.items():
            name = "base_model.model." + lora_module_name(layer, proj)
            tensors[name + ".lora_A.weight"] = a.clone()  # q/k/v may share one stacked A: one copy each
            tensors[name + ".lora_B.weight"] = b.clone()
    save_file(tensors, os.path.join(adapter_dir, "adapter_model.safetensors"), metadata={"format": "pt"})


# ----------------------------------------------------------------------------------------------------------------
# Projector
# ----------------------------------------------------------------------------------------------------------------


def convert_projector(state: dict, text_hidden: int, source: str, allow_unexpected: bool) -> tuple[dict, dict]:
    """MotionLLM's `Sequential(Linear(d, H), GELU, Linear(H, H))` onto llamo's `multi_modal_projector`."""
    tensors, unexpected = {}, []
    for key, value in state.items():
        match = PROJECTOR_KEY.fullmatch(key)
        if match is None:
            unexpected.append(key)
            continue
        layer = "linear_1" if match.group(1) == "0" else "linear_2"
        tensors[f"model.multi_modal_projector.{layer}.{match.group(2)}"] = value
    width = tensors.get("model.multi_modal_projector.linear_1.weight")
    in_width = width.shape[1] if width is not None else -1
    expected = {
        "model.multi_modal_projector.linear_1.weight": (text_hidden, in_width),
        "model.multi_modal_projector.linear_1.bias": (text_hidden,),
        "model.multi_modal_projector.linear_2.weight": (text_hidden, text_hidden),
        "model.multi_modal_projector.linear_2.bias": (text_hidden,),
    }
    problems = check_shapes(tensors, expected, source)
    if unexpected and not allow_unexpected:
        problems += [f"{source}: unexpected key {key} {tuple(state[key].shape)}" for key in unexpected]
    if problems:
        raise ConversionError(f"{source} is not a Linear({in_width}, {text_hidden})-GELU-Linear projector", problems)
    report = {"source": source, "keys": len(state), "consumed": len(state) - len(unexpected), "unexpected": unexpected,
              "in_features": in_width, "out_features": text_hidden, "mapped_to": "model.multi_modal_projector",
              "dtype": str(width.dtype).replace("torch.", "")}
    return tensors, report


# ----------------------------------------------------------------------------------------------------------------
# The conversion
# ----------------------------------------------------------------------------------------------------------------


def _largest_head_count(width: int) -> int:
    return next(h for h in (16, 8, 4, 2, 1) if width % h == 0)


def convert_motionllm(
    output_dir: str | os.PathLike | None,
    *,
    lit_checkpoint: str | os.PathLike | None = None,
    hf_checkpoint: str | os.PathLike | None = None,
    lora: str | os.PathLike | None = None,
    projector: str | os.PathLike | None = None,
    vision_tower=None,
    tokenizer: str | os.PathLike | None = None,
    merge_lora: bool = False,
    lora_index_layout: str = "contiguous",
    lora_alpha: float = 16,
    lora_r: int | None = None,
    lora_targets: tuple[str, ...] = ("query", "value"),
    lora_dropout: float = 0.05,
    num_heads: int = 32,
    num_query_groups: int | None = None,
    text_config_overrides: dict | None = None,
    num_key_frames: int = 16,
    num_frames: int = 8,
    frame_proj_identity: bool = True,
    llamo_config_overrides: dict | None = None,
    dtype="auto",
    allow_unexpected: bool = False,
    seed: int = 0,
) -> dict:
    """Converts MotionLLM's release into a llamo checkpoint folder; returns (and saves) a report.

    Args:
        output_dir: output folder; `None` runs every check and writes nothing.
        lit_checkpoint: lit-gpt `lit_model.pth` of Vicuna-7B-v1.5 (exclusive with `hf_checkpoint`).
        hf_checkpoint: the transformers-format Vicuna folder (with `config.json`) instead.
        lora: MotionLLM's `lora.pth`; `None` converts the base alone.
        projector: MotionLLM's `linear.pth`; `None` leaves llamo's projector freshly initialised.
        vision_tower: a CLIP-family model folder / Hub id (its vision weights become the frame encoder's tower),
            or a vision config (object or dict) for a randomly initialised tower.
        tokenizer: the Vicuna tokenizer folder; `<motion>` is added (embedding and LM-head rows grow with their
            mean) and a `LlamoProcessor` with `MOTIONLLM_CHAT_TEMPLATE` is saved.
        merge_lora: merge the LoRA into the weights instead of writing `<output>/adapter`.
        lora_index_layout: `"contiguous"` (MotionLLM's vendored lit_gpt; default) or `"interleaved"` (lit-gpt
            after PR #900); see the module docstring.
        lora_alpha, lora_r, lora_targets, lora_dropout: MotionLLM's LoRA settings (16, inferred (64),
            query+value, 0.05); alpha is not stored in `lora.pth`.
        num_heads, num_query_groups: attention heads of the lit-gpt model (32, and inferred from the shapes).
        text_config_overrides: values for the Llama text config (defaults: Vicuna-7B-v1.5's).
        num_key_frames: K of the llamo checkpoint (`<motion>` placeholders per clip).
        num_frames: frames the saved frame processor samples per clip (MotionLLM used 8).
        frame_proj_identity: when the vision width equals llamo's `hidden_size`, start `frame_encoder.proj` as
            the identity, so frame features reach the streams unchanged.
        llamo_config_overrides: other `LlamoConfig` fields.
        dtype: `"auto"` (the base model's dtype), `"float32"`, `"bfloat16"` or `"float16"`.
        allow_unexpected: report unknown source keys instead of failing.
        seed: seed of the freshly initialised modules.
    """
    from modeling_llamo import LlamoConfig

    if (lit_checkpoint is None) == (hf_checkpoint is None):
        raise ConversionError("Give exactly one of lit_checkpoint (lit_model.pth) and hf_checkpoint (a Vicuna folder).")
    unknown = set(lora_targets) - {"query", "key", "value"}
    if unknown:
        raise ConversionError(f"lora_targets must be among query, key, value; got {sorted(unknown)}.")
    enabled = tuple(name in lora_targets for name in ("query", "key", "value"))
    report: dict = {"converter": "convert_motionllm"}
    problems: list[str] = []

    # ---- base language model --------------------------------------------------------------------------------
    if lit_checkpoint is not None:
        base = load_tensor_file(lit_checkpoint)
        arch = infer_litgpt_architecture(base, num_heads, num_query_groups)
        problems += check_shapes(base, arch.expected_shapes(), str(lit_checkpoint), allow_unexpected)
        text_config = arch.text_config(text_config_overrides)
        table = KeyTable.load("litgpt_llama")
        layout = arch.qkv
        base_source = str(lit_checkpoint)
    else:
        from transformers import AutoConfig

        base = load_weights(hf_checkpoint)
        hf_config = AutoConfig.from_pretrained(hf_checkpoint)
        text_config = hf_config.to_dict()
        text_config.update(text_config_overrides or {})
        head_size = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
        layout = QKVLayout(hf_config.num_attention_heads, hf_config.num_key_value_heads, head_size)
        arch = LitGPTArchitecture(hf_config.num_hidden_layers, hf_config.hidden_size, hf_config.num_attention_heads,
                                  hf_config.num_key_value_heads, hf_config.intermediate_size, hf_config.vocab_size)
        table = KeyTable.load("hf_llama")
        base_source = str(hf_checkpoint)
    mapped = None
    try:
        mapped = apply_table(base, table, {"qkv_layout": layout}, allow_unexpected, base_source)
    except ConversionError as error:
        problems += error.problems
    report["base"] = {"source": base_source, "format": "lit-gpt" if lit_checkpoint else "transformers",
                      "keys": len(base), "consumed": mapped.consumed if mapped else 0,
                      "dropped": mapped.dropped if mapped else {}, "unexpected": mapped.unexpected if mapped else [],
                      "layers": arch.n_layer, "hidden_size": arch.n_embd, "heads": layout.n_head,
                      "kv_heads": layout.n_query_groups, "vocab_size": arch.vocab_size}

    # ---- LoRA -----------------------------------------------------------------------------------------------
    lora_layers = None
    if lora is not None:
        try:
            lora_layers, report["lora"] = convert_lora(
                load_tensor_file(lora), layout, arch.n_layer, arch.n_embd, lora_alpha, lora_r, enabled,
                lora_index_layout, allow_unexpected, str(lora),
            )
            report["lora"]["mode"] = "merged" if merge_lora else "peft adapter"
        except ConversionError as error:
            problems += error.problems or [str(error)]

    # ---- projector ------------------------------------------------------------------------------------------
    projector_tensors, hidden_size = {}, (llamo_config_overrides or {}).get("hidden_size")
    if projector is not None:
        try:
            projector_tensors, report["projector"] = convert_projector(
                load_tensor_file(projector), arch.n_embd, str(projector), allow_unexpected
            )
            width = report["projector"]["in_features"]
            if hidden_size not in (None, width):
                problems.append(f"{projector}: projector input width {width} != requested hidden_size {hidden_size}")
            hidden_size = width
        except ConversionError as error:
            problems += error.problems or [str(error)]
    if problems:  # everything about the MotionLLM files is checked before anything else is loaded or written
        raise ConversionError("MotionLLM conversion refused; nothing was written", problems)
    hidden_size = hidden_size or 1024

    # ---- vision tower, tokenizer, config ---------------------------------------------------------------------
    tensors = dict(mapped.tensors)
    tensors.update(projector_tensors)
    init_new = list(NEW_MODULES)
    if projector is None:
        init_new.append("model.multi_modal_projector.")
    if isinstance(vision_tower, (str, os.PathLike)):
        vision_config, vision_tensors, report["vision_tower"] = load_vision_tower(str(vision_tower))
        tensors.update(vision_tensors)
    elif vision_tower is not None:
        from transformers import AutoConfig, PreTrainedConfig

        vision_config = vision_tower if isinstance(vision_tower, PreTrainedConfig) else AutoConfig.for_model(**vision_tower)
        init_new.append("model.frame_encoder.vision_tower.")
        report["vision_tower"] = {"source": None, "model_type": vision_config.model_type, "initialised": "random"}
    else:
        raise ConversionError("Give a vision tower: a CLIP-family model folder / Hub id (or a vision config).")

    tok = None
    motion_token_id = None
    if tokenizer is not None:
        tok, motion_token_id, added = load_tokenizer_with_motion_token(str(tokenizer))
        text_config["vocab_size"] = max(arch.vocab_size, len(tok))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(tok, name, None)
            if value is not None:
                text_config[name] = value
        report["tokenizer"] = {"source": str(tokenizer), "size": len(tok), "motion_token": "<motion>",
                               "motion_token_id": motion_token_id, "added": added}
    if lora_layers is not None and merge_lora:
        scaling = report["lora"]["scaling"]
        for layer, projections in lora_layers.items():
            for proj, (a, b) in projections.items():
                name = lora_module_name(layer, proj) + ".weight"
                tensors[name] = tensors[name].float() + scaling * (b.float() @ a.float())
    if frame_proj_identity and vision_config.hidden_size == hidden_size:
        tensors["model.frame_encoder.proj.weight"] = torch.eye(hidden_size)
        tensors["model.frame_encoder.proj.bias"] = torch.zeros(hidden_size)
        init_new.remove("model.frame_encoder.proj.")

    fields = {
        "text_config": text_config, "vision_config": vision_config, "hidden_size": hidden_size,
        "num_attention_heads": _largest_head_count(hidden_size), "intermediate_size": 4 * hidden_size,
        "projector_hidden_act": "gelu", "num_key_frames": num_key_frames, "tie_word_embeddings": False,
    }
    if motion_token_id is not None:
        fields["motion_token_id"] = motion_token_id
    fields.update(llamo_config_overrides or {})
    config = LlamoConfig(**fields)
    target_dtype = resolve_dtype(dtype, base.get("transformer.wte.weight", base.get("model.embed_tokens.weight")))
    model, info = build_llamo_model(config, tensors, init_new, mapped.growable, target_dtype, seed)
    report.update({
        "dtype": str(target_dtype).replace("torch.", ""),
        "llamo_config": {"hidden_size": hidden_size, "num_key_frames": num_key_frames,
                         "motion_token_id": config.motion_token_id, "vocab_size": config.text_config.vocab_size},
        "grown": info["grown"],
        "warm_started": sorted(
            {"model.language_model", "lm_head"} | ({"model.multi_modal_projector"} if projector is not None else set())
            | ({"model.frame_encoder.vision_tower"} if isinstance(vision_tower, (str, os.PathLike)) else set())
            | ({"model.frame_encoder.proj (identity)"} if "model.frame_encoder.proj." not in init_new else set())
            | ({f"LoRA ({'merged' if merge_lora else 'adapter'})"} if lora_layers is not None else set())
        ),
        "initialised_new": info["initialised"],
        "output_dir": None if output_dir is None else str(output_dir),
    })

    # ---- writing ----------------------------------------------------------------------------------------------
    if output_dir is None:
        return report
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    files = ["config.json", "model.safetensors (or shards)"]
    if lora_layers is not None and not merge_lora:
        adapter_dir = os.path.join(output_dir, "adapter")
        save_peft_adapter(adapter_dir, lora_layers, report["lora"], str(output_dir), lora_dropout)
        report["lora"]["adapter_dir"] = adapter_dir
        files.append("adapter/")
    if tok is not None:
        report["processor"] = save_processor(output_dir, tok, config.vision_config, num_key_frames,
                                             MOTIONLLM_CHAT_TEMPLATE, num_frames=num_frames)
        files.append("processor files + chat_template.jinja")
    report["files"] = files + ["conversion_report.json"]
    Path(output_dir, "conversion_report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m conversion.convert_motionllm",
        description="Convert MotionLLM-7B (IDEA-Research) weights into a llamo checkpoint: Vicuna base (lit-gpt "
                    "lit_model.pth or a transformers folder) + lora.pth (peft adapter or merged) + linear.pth "
                    "(projector) + a CLIP-family vision tower + the Vicuna tokenizer with MotionLLM's prompt.",
    )
    base = parser.add_mutually_exclusive_group(required=True)
    base.add_argument("--lit-checkpoint", help="lit-gpt Vicuna-7B-v1.5 lit_model.pth")
    base.add_argument("--hf-checkpoint", help="transformers-format Vicuna-7B-v1.5 folder (config.json + weights)")
    parser.add_argument("--lora", help="MotionLLM lora.pth")
    parser.add_argument("--projector", help="MotionLLM linear.pth (video projector)")
    parser.add_argument("--vision-tower", required=True, help="CLIP-family model folder or Hub id (vision tower)")
    parser.add_argument("--tokenizer", help="Vicuna tokenizer folder (saves a LlamoProcessor with MotionLLM's prompt)")
    parser.add_argument("--output", help="output folder (omit with --dry-run)")
    parser.add_argument("--merge-lora", action="store_true", help="merge the LoRA instead of writing a peft adapter")
    parser.add_argument("--lora-index-layout", choices=("contiguous", "interleaved"), default="contiguous",
                        help="contiguous: MotionLLM's vendored lit_gpt (default, what MotionLLM ran); "
                             "interleaved: lit-gpt after PR #900")
    parser.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA alpha (MotionLLM: 16)")
    parser.add_argument("--lora-r", type=int, help="LoRA rank (default: inferred, 64 for MotionLLM)")
    parser.add_argument("--lora-targets", default="query,value", help="enabled parts of the fused QKV (default query,value)")
    parser.add_argument("--num-heads", type=int, default=32, help="attention heads of the lit-gpt model (default 32)")
    parser.add_argument("--num-query-groups", type=int, help="key/value heads (default: inferred from shapes)")
    parser.add_argument("--num-key-frames", type=int, default=16, help="K of the llamo checkpoint (default 16)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames per clip of the saved processor (default 8)")
    parser.add_argument("--no-frame-proj-identity", action="store_true",
                        help="initialise frame_encoder.proj randomly even when widths match")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument("--allow-unexpected", action="store_true", help="report unknown keys instead of failing")
    parser.add_argument("--dry-run", action="store_true", help="check every file and shape, write nothing")
    parser.add_argument("--seed", type=int, default=0, help="seed for the freshly initialised modules")
    args = parser.parse_args(argv)
    if args.output is None and not args.dry_run:
        parser.error("--output is required unless --dry-run is given")
    report = convert_motionllm(
        None if args.dry_run else args.output,
        lit_checkpoint=args.lit_checkpoint, hf_checkpoint=args.hf_checkpoint, lora=args.lora,
        projector=args.projector, vision_tower=args.vision_tower, tokenizer=args.tokenizer,
        merge_lora=args.merge_lora, lora_index_layout=args.lora_index_layout, lora_alpha=args.lora_alpha,
        lora_r=args.lora_r, lora_targets=tuple(t.strip() for t in args.lora_targets.split(",") if t.strip()),
        num_heads=args.num_heads, num_query_groups=args.num_query_groups, num_key_frames=args.num_key_frames,
        num_frames=args.num_frames, frame_proj_identity=not args.no_frame_proj_identity, dtype=args.dtype,
        allow_unexpected=args.allow_unexpected, seed=args.seed,
    )
    print(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
