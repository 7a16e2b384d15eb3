"""Table-driven conversion of LLaVA-family training checkpoints (and other layouts) into llamo checkpoints.

The key map is data: a JSON table in `conversion/key_maps/` (or any JSON file given by path) lists regular
expressions over *source* keys and the llamo key(s) each becomes, with an optional named transform:

```json
{"name": "...", "description": "...",
 "rules": [{"source": "model\\\\.layers\\\\.(\\\\d+)\\\\.(.+)", "target": "model.language_model.layers.\\\\1.\\\\2"},
           {"source": "...inv_freq", "target": null, "reason": "recomputed from the config"}],
 "init_new": ["model.cross_talker.", "..."]}
```

- The first rule whose `source` fully matches a key wins; `target` is expanded with the match's groups
  (`\\1`, `\\2`...), a list of targets goes with a transform that returns one tensor per target, and
  `target: null` drops the key with the given `reason` (reported).
- Every source key is consumed by a rule or reported: unmatched keys are an error unless
  `allow_unexpected=True`, in which case they are listed in the report's `unexpected` entry.
- `init_new` lists llamo module prefixes a checkpoint of this layout may lack (the motion modules of a plain
  LLaVA checkpoint, for instance): when *none* of a prefix's keys is given, that module is freshly initialised
  exactly as a new `LlamoForConditionalGeneration` would be; a partly given module is an error.
- Transforms: `vocab_rows` (the vocabulary may grow when `<motion>` is added: new rows are the mean of the
  existing ones) and `litgpt_qkv` (lit-gpt's fused, per-query-group interleaved QKV into q/k/v projections).

The model is built on the meta device and loaded with `load_state_dict(strict=True, assign=True)`, so every
target name and shape is checked against the real module tree before anything is written, and no memory is
spent on a random initialisation of weights that are then overwritten.

If the LLaMo authors publish their training layout, converting it is one new table in `key_maps/`.

Command line: `python -m conversion.llava_layout --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

KEY_MAPS_DIR = Path(__file__).parent / "key_maps"
MOTION_TOKEN = "<motion>"

# ----------------------------------------------------------------------------------------------------------------
# Errors and safe loading
# ----------------------------------------------------------------------------------------------------------------


class ConversionError(ValueError):
    """A conversion problem found before anything was written; `problems` lists each one by key name."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            shown = self.problems[:40]
            more = len(self.problems) - len(shown)
            message = message + "\n  - " + "\n  - ".join(shown) + (f"\n  ... and {more} more" if more > 0 else "")
        super().__init__(message)


def _flatten_checkpoint(obj, path: str) -> dict[str, torch.Tensor]:
    """A flat `{name: tensor}` dict; unwraps one level of `{"model": ...}` / `{"state_dict": ...}`."""
    if isinstance(obj, dict) and len(obj) == 1:
        (only_key, only_value), = obj.items()
        if only_key in ("model", "state_dict", "module") and isinstance(only_value, dict):
            obj = only_value
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a dict of tensors, got a {type(obj).__name__}.")
    bad = [f"{key!r}: {type(value).__name__}" for key, value in obj.items()
           if not isinstance(key, str) or not isinstance(value, torch.Tensor)]
    if bad:
        raise ConversionError(f"{path}: refusing a checkpoint whose entries are not all tensors", bad)
    return dict(obj)


def load_tensor_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Reads one weights file without ever running arbitrary pickled code.

    `.safetensors` through safetensors; anything else (`.pth`, `.bin`, `.pt`) through
    `torch.load(weights_only=True)` (memory-mapped where the file allows it). Pickles holding anything but
    tensors (in a dict, optionally under one `"model"`/`"state_dict"` key) are refused.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ConversionError(f"No such weights file: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(error):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ConversionError(
            f"{path}: refused to unpickle (torch.load(weights_only=True) allows tensors and plain containers only; "
            f"this file holds other objects): {str(error).splitlines()[0]}"
        ) from error
    return _flatten_checkpoint(obj, path)


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A weights file, or a folder of them (`*.safetensors` preferred, else `*.bin`/`*.pth`/`*.pt`), merged."""
    path = Path(path)
    if path.is_file():
        return load_tensor_file(path)
    if not path.is_dir():
        raise ConversionError(f"No such weights file or folder: {path}")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        files = sorted(p for ext in ("*.bin", "*.pth", "*.pt") for p in path.glob(ext) if "training_args" not in p.name)
    if not files:
        raise ConversionError(f"{path}: no *.safetensors, *.bin, *.pth or *.pt weights files found.")
    merged: dict[str, torch.Tensor] = {}
    for file in files:
        part = load_tensor_file(file)
        clash = sorted(set(part) & set(merged))
        if clash:
            raise ConversionError(f"{file}: keys already read from another file of {path}", clash)
        merged.update(part)
    return merged


# ----------------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class KeyRule:
    source: re.Pattern
    target: str | list[str] | None
    transform: str | None = None
    reason: str | None = None

    def targets(self, match: re.Match) -> list[str]:
        templates = [self.target] if isinstance(self.target, str) else list(self.target or [])
        return [match.expand(template) for template in templates]


@dataclass
class KeyTable:
    """A key map from one checkpoint layout to llamo's, loaded from JSON (see the module docstring)."""

    name: str
    rules: list[KeyRule]
    description: str = ""
    init_new: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> KeyTable:
        rules = []
        for index, rule in enumerate(data["rules"]):
            if rule.get("transform") not in (None, *TRANSFORMS):
                raise ValueError(f"Table {data.get('name')!r}, rule {index}: unknown transform {rule['transform']!r}.")
            target = rule.get("target")
            if isinstance(target, list) and rule.get("transform") not in MULTI_TARGET_TRANSFORMS:
                raise ValueError(f"Table {data.get('name')!r}, rule {index}: several targets need a splitting transform.")
            rules.append(KeyRule(re.compile(rule["source"]), target, rule.get("transform"), rule.get("reason")))
        return cls(data["name"], rules, data.get("description", ""), list(data.get("init_new", [])))

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> KeyTable:
        """A table by name (`conversion/key_maps/<name>.json`) or by path to a JSON file."""
        path = Path(name_or_path)
        if not path.suffix:
            path = KEY_MAPS_DIR / f"{name_or_path}.json"
        if not path.is_file():
            known = sorted(p.stem for p in KEY_MAPS_DIR.glob("*.json"))
            raise ConversionError(f"No key-map table {name_or_path!r}; known tables: {known}, or pass a JSON file path.")
        return cls.from_dict(json.loads(path.read_text()))

    def match(self, key: str) -> tuple[KeyRule, re.Match] | None:
        for rule in self.rules:
            found = rule.source.fullmatch(key)
            if found:
                return rule, found
        return None


def available_tables() -> list[str]:
    return sorted(p.stem for p in KEY_MAPS_DIR.glob("*.json"))


# ---- transforms ------------------------------------------------------------------------------------------------


@dataclass
class QKVLayout:
    """lit-gpt's fused attention layout: `n_query_groups` groups of (q_per_kv q heads, 1 k head, 1 v head)."""

    n_head: int
    n_query_groups: int
    head_size: int

    @property
    def q_per_kv(self) -> int:
        return self.n_head // self.n_query_groups

    @property
    def fused_rows(self) -> int:
        return (self.n_head + 2 * self.n_query_groups) * self.head_size

    def split(self, fused: torch.Tensor) -> list[torch.Tensor]:
        """Fused (rows, ...) -> [q (n_head*hs, ...), k (groups*hs, ...), v (groups*hs, ...)] in transformers order.

        Query head `h` of transformers' Llama attends with key/value head `h // q_per_kv`, which is exactly the
        group lit-gpt stores it in, so de-interleaving keeps head order.
        """
        if fused.shape[0] != self.fused_rows:
            raise ValueError(f"fused QKV has {fused.shape[0]} rows, expected {self.fused_rows}")
        rest = tuple(fused.shape[1:])
        grouped = fused.reshape(self.n_query_groups, self.q_per_kv + 2, self.head_size, *rest)
        q = grouped[:, : self.q_per_kv].reshape(self.n_head * self.head_size, *rest)
        k = grouped[:, self.q_per_kv].reshape(self.n_query_groups * self.head_size, *rest)
        v = grouped[:, self.q_per_kv + 1].reshape(self.n_query_groups * self.head_size, *rest)
        return [q.contiguous(), k.contiguous(), v.contiguous()]

    def locate(self, fused_row: int) -> tuple[str, int]:
        """Which transformers projection (`"q"`, `"k"`, `"v"`) and row a fused row becomes."""
        group_rows = (self.q_per_kv + 2) * self.head_size
        group, within = divmod(fused_row, group_rows)
        slot, offset = divmod(within, self.head_size)
        if slot < self.q_per_kv:
            return "q", (group * self.q_per_kv + slot) * self.head_size + offset
        return ("k" if slot == self.q_per_kv else "v"), group * self.head_size + offset


def _transform_identity(tensor, context):
    return [tensor]


def _transform_litgpt_qkv(tensor, context):
    layout = context.get("qkv_layout")
    if layout is None:
        raise ConversionError("The `litgpt_qkv` transform needs `qkv_layout` (heads, query groups, head size).")
    return layout.split(tensor)


TRANSFORMS: dict[str, Callable] = {"vocab_rows": _transform_identity, "litgpt_qkv": _transform_litgpt_qkv}
MULTI_TARGET_TRANSFORMS = {"litgpt_qkv"}
GROWABLE_TRANSFORMS = {"vocab_rows"}


# ----------------------------------------------------------------------------------------------------------------
# Applying a table
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class MappedWeights:
    """Result of applying a table: llamo-named tensors plus the bookkeeping the report needs."""

    tensors: dict[str, torch.Tensor]
    growable: set[str]
    consumed: int
    dropped: dict[str, str]
    unexpected: list[str]


def apply_table(
    state_dict: dict[str, torch.Tensor],
    table: KeyTable,
    context: dict | None = None,
    allow_unexpected: bool = False,
    source_name: str = "checkpoint",
) -> MappedWeights:
    """Renames (and transforms) `state_dict` by `table`; every key is consumed, dropped with a reason, or reported."""
    context = context or {}
    tensors, growable, dropped, unexpected, problems = {}, set(), {}, [], []
    origin: dict[str, str] = {}
    consumed = 0
    for key, value in state_dict.items():
        found = table.match(key)
        if found is None:
            unexpected.append(key)
            continue
        rule, match = found
        if rule.target is None:
            dropped[key] = rule.reason or "dropped by the table"
            continue
        targets = rule.targets(match)
        try:
            pieces = TRANSFORMS[rule.transform or "vocab_rows"](value, context)
        except ValueError as error:
            problems.append(f"{source_name}: {key} {tuple(value.shape)}: {error}")
            continue
        for target, piece in zip(targets, pieces):
            if target in tensors:
                problems.append(f"{source_name}: {key} and {origin[target]} both map to {target}")
                continue
            tensors[target], origin[target] = piece, key
            if rule.transform in GROWABLE_TRANSFORMS:
                growable.add(target)
        consumed += 1
    if unexpected and not allow_unexpected:
        problems += [f"{source_name}: unexpected key {key} {tuple(state_dict[key].shape)} (no rule of table "
                     f"{table.name!r} matches it)" for key in unexpected]
    if problems:
        raise ConversionError(f"Cannot convert {source_name} with table {table.name!r}", problems)
    return MappedWeights(tensors, growable, consumed, dropped, unexpected)


def grow_rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    """Appends rows equal to the mean of the existing ones (mean-resizing of embeddings / LM head)."""
    extra = rows - tensor.shape[0]
    if extra <= 0:
        return tensor
    mean = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)
    return torch.cat([tensor, mean.expand(extra, *tensor.shape[1:])], dim=0)


# ----------------------------------------------------------------------------------------------------------------
# Building the llamo model on the meta device
# ----------------------------------------------------------------------------------------------------------------


def resolve_dtype(dtype, reference: torch.Tensor | None) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    try:
        resolved = getattr(torch, str(dtype))
    except AttributeError:
        resolved = None
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ConversionError(f"Unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16.")
    return resolved


def build_llamo_model(
    config,
    tensors: dict[str, torch.Tensor],
    init_new: list[str] = (),
    growable: set[str] = frozenset(),
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
):
    """Builds `LlamoForConditionalGeneration(config)` on the meta device and loads `tensors` into it.

    Checks, before any tensor is materialised: every key the model needs is given, or lies in a module of
    `init_new` of which no key was given (that module is then initialised as a fresh model would be);
    no key is extra; shapes match (rows of `growable` keys may be extended with their mean). Loads with
    `load_state_dict(strict=True, assign=True)`. Returns `(model, info)` where `info` lists grown and
    initialised names. Non-persistent buffers (rotary frequencies, position ids) stay on the meta device:
    they are not saved and are rebuilt by `from_pretrained`, so reload the saved folder to run the model.
    """
    from modeling_llamo import LlamoForConditionalGeneration

    with torch.device("meta"):
        model = LlamoForConditionalGeneration(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tied = bool(getattr(config, "tie_word_embeddings", False))
    problems, grown = [], []
    tensors = dict(tensors)
    if tied and "lm_head.weight" in expected and "lm_head.weight" not in tensors:
        embed = "model.language_model.embed_tokens.weight"
        if embed in tensors:
            tensors["lm_head.weight"] = tensors[embed]
    for name, tensor in tensors.items():
        if name not in expected:
            problems.append(f"extra key {name} {tuple(tensor.shape)}: the llamo model has no such parameter")
            continue
        want = expected[name]
        have = tuple(tensor.shape)
        if have != want and name in growable and have[1:] == want[1:] and have[0] < want[0]:
            tensors[name] = grow_rows(tensor, want[0])
            grown.append(f"{name}: {have[0]} -> {want[0]} rows (new rows = mean of the others)")
        elif have != want:
            problems.append(f"mis-shaped key {name}: got {have}, expected {want}")
    missing = [name for name in expected if name not in tensors]
    to_init = []
    for prefix in init_new:
        under = [name for name in expected if name.startswith(prefix)]
        if not under:
            continue
        given = [name for name in under if name in tensors]
        if not given:
            to_init.append(prefix)
        elif len(given) != len(under):
            problems += [f"missing key {name} (module {prefix!r} is only partly given)" for name in under if name not in tensors]
    covered = tuple(init_new)  # wholly absent modules are initialised, partly given ones were reported above
    problems += [f"missing key {name} {expected[name]}" for name in missing if not name.startswith(covered)]
    if problems:
        raise ConversionError("The weights do not fit the llamo model built from the config", problems)

    if to_init:
        torch.manual_seed(seed)
        for prefix in to_init:
            module = model.get_submodule(prefix.rstrip("."))
            module.to_empty(device="cpu")
            for sub in module.modules():
                model._init_weights(sub)
            for name, value in module.state_dict().items():
                tensors[prefix + name] = value
    for name, value in tensors.items():
        if value.is_floating_point() and value.dtype != dtype:
            tensors[name] = value.to(dtype)
    model.load_state_dict(tensors, strict=True, assign=True)
    model.config.dtype = dtype
    if tied:
        model.tie_weights()
    return model, {"grown": grown, "initialised": to_init}


# ----------------------------------------------------------------------------------------------------------------
# Vision tower, tokenizer and processor (shared with convert_motionllm)
# ----------------------------------------------------------------------------------------------------------------


def load_vision_tower(name_or_path: str, dtype=None) -> tuple[object, dict[str, torch.Tensor], dict]:
    """A CLIP-family model (folder or Hub id; `CLIPModel`, `CLIPVisionModel`, SigLIP...) as llamo's vision tower.

    Returns the vision config, its weights named `model.frame_encoder.vision_tower.*`, and a report entry.
    Text-tower and projection weights of a dual-encoder checkpoint are reported as skipped.
    """
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(name_or_path)
    vision_config = getattr(config, "vision_config", None) or config
    if "vision" not in vision_config.model_type:
        raise ConversionError(f"{name_or_path}: model type {config.model_type!r} has no vision tower; give a "
                              "CLIP/SigLIP-family model.")
    model = AutoModel.from_pretrained(name_or_path, dtype=dtype or torch.float32)
    tower = getattr(model, "vision_model", None)
    if not isinstance(tower, torch.nn.Module) or not hasattr(tower, "config"):  # already a vision model
        tower = model
    # Names as transformers >= 5 holds them in memory (a vision model's keys carry no `vision_model.` prefix).
    tensors = {"model.frame_encoder.vision_tower." + key: value for key, value in tower.state_dict().items()}
    kept = {id(value) for value in tower.state_dict().values()}
    skipped = [key for key, value in model.state_dict().items() if id(value) not in kept] if tower is not model else []
    report = {
        "source": str(name_or_path),
        "model_type": vision_config.model_type,
        "hidden_size": vision_config.hidden_size,
        "image_size": getattr(vision_config, "image_size", None),
        "tensors": len(tensors),
        "skipped_not_vision": skipped,
    }
    return vision_config, tensors, report


def load_tokenizer_with_motion_token(name_or_path: str):
    """The language model's tokenizer with the `<motion>` special token added (as `LlamoProcessor` adds it)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    added = MOTION_TOKEN not in tokenizer.get_vocab()
    if added:
        tokenizer.add_special_tokens({"extra_special_tokens": [MOTION_TOKEN]}, replace_extra_special_tokens=False)
    return tokenizer, tokenizer.convert_tokens_to_ids(MOTION_TOKEN), added


def save_processor(output_dir, tokenizer, vision_config, num_key_frames: int, chat_template: str | None = None,
                   num_frames: int | None = None) -> dict:
    """Saves a `LlamoProcessor` (tokenizer, frame processor matching the vision tower, motion processor).

    Falls back to the tokenizer plus `chat_template.jinja` when `processing_llamo` cannot be imported.
    """
    try:
        from processing_llamo import LlamoFrameProcessor, LlamoProcessor
    except ImportError as error:  # pragma: no cover - processing extras missing
        tokenizer.chat_template = chat_template
        tokenizer.save_pretrained(output_dir)
        if chat_template is not None:
            Path(output_dir, "chat_template.jinja").write_text(chat_template)
        return {"saved": "tokenizer + chat_template.jinja", "why": f"processing_llamo unavailable: {error}"}
    frame_kwargs = {} if num_frames is None else {"num_frames": num_frames}
    frame_processor = LlamoFrameProcessor.from_vision_config(vision_config, **frame_kwargs)
    processor = LlamoProcessor(
        image_processor=frame_processor, tokenizer=tokenizer, chat_template=chat_template, num_key_frames=num_key_frames
    )
    processor.save_pretrained(output_dir)
    return {"saved": "LlamoProcessor", "num_frames": frame_processor.num_frames, "image_size": frame_processor.size,
            "image_mean": frame_processor.image_mean, "image_std": frame_processor.image_std}


# ----------------------------------------------------------------------------------------------------------------
# LLaVA-family conversion
# ----------------------------------------------------------------------------------------------------------------


def convert_llava_checkpoint(
    checkpoint: str | os.PathLike,
    config,
    output_dir: str | os.PathLike | None,
    table: str | os.PathLike = "llava_llama",
    vision_tower: str | None = None,
    tokenizer: str | None = None,
    dtype="auto",
    allow_unexpected: bool = False,
    seed: int = 0,
) -> dict:
    """Converts a LLaVA-family training checkpoint (file or folder) into a llamo checkpoint folder.

    Args:
        checkpoint: weights file or folder (`model.layers.*`, `model.mm_projector.*`, optionally
            `model.vision_tower.vision_tower.*` and llamo-named motion modules).
        config: a `LlamoConfig`, a dict of its fields, or a path to a llamo `config.json` / folder. Its
            `text_config` must describe the checkpoint's language model and `vision_config` its vision tower.
        output_dir: where the llamo checkpoint goes; `None` checks everything and writes nothing.
        table: a table name of `conversion/key_maps/` or a JSON file.
        vision_tower: a CLIP-family model whose vision weights replace / supply the vision tower
            (LLaVA checkpoints usually leave the tower out); its config replaces `vision_config`.
        tokenizer: the language model's tokenizer; `<motion>` is added, embeddings grow with mean rows, and a
            `LlamoProcessor` is saved with the default (ChatML) template.
        dtype: `"auto"` (the embeddings' dtype), `"float32"`, `"bfloat16"`, `"float16"`.
        allow_unexpected: report source keys no rule matches instead of failing.
    Returns:
        A report dict (also written to `conversion_report.json`).
    """
    from modeling_llamo import LlamoConfig

    key_table = KeyTable.load(table)
    if isinstance(config, (str, os.PathLike)):
        config = LlamoConfig.from_pretrained(config)
    elif isinstance(config, dict):
        config = LlamoConfig(**config)
    source = load_weights(checkpoint)
    mapped = apply_table(source, key_table, allow_unexpected=allow_unexpected, source_name=str(checkpoint))
    tensors = mapped.tensors
    report: dict = {
        "converter": "llava_layout",
        "table": key_table.name,
        "source": {"path": str(checkpoint), "keys": len(source), "consumed": mapped.consumed,
                   "dropped": mapped.dropped, "unexpected": mapped.unexpected},
    }
    if vision_tower is not None:
        vision_config, vision_tensors, report["vision_tower"] = load_vision_tower(vision_tower)
        tensors = {k: v for k, v in tensors.items() if not k.startswith("model.frame_encoder.vision_tower.")}
        tensors.update(vision_tensors)
        config.vision_config = vision_config
    tok = None
    if tokenizer is not None:
        tok, motion_token_id, added = load_tokenizer_with_motion_token(tokenizer)
        config.motion_token_id = motion_token_id
        config.text_config.vocab_size = max(config.text_config.vocab_size, len(tok))
        report["tokenizer"] = {"source": str(tokenizer), "motion_token_id": motion_token_id, "added": added,
                               "vocab_size": config.text_config.vocab_size}
    config._check_values()
    target_dtype = resolve_dtype(dtype, tensors.get("model.language_model.embed_tokens.weight"))
    model, info = build_llamo_model(config, tensors, key_table.init_new, mapped.growable, target_dtype, seed)
    report.update({"dtype": str(target_dtype).replace("torch.", ""), "grown": info["grown"],
                   "initialised_new": info["initialised"]})
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        model.save_pretrained(output_dir)
        if tok is not None:
            report["processor"] = save_processor(output_dir, tok, config.vision_config, config.num_key_frames)
        Path(output_dir, "conversion_report.json").write_text(json.dumps(report, indent=2, default=str))
    report["output_dir"] = None if output_dir is None else str(output_dir)
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m conversion.llava_layout",
        description="Convert a LLaVA-family training checkpoint into a llamo checkpoint with a key-map table "
                    f"(tables: {', '.join(available_tables())}, or a JSON file).",
    )
    parser.add_argument("--checkpoint", required=True, help="weights file or folder (safetensors / .bin / .pth)")
    parser.add_argument("--config", required=True, help="llamo config.json (or folder holding one) describing the target")
    parser.add_argument("--output", help="output folder; omit with --dry-run")
    parser.add_argument("--table", default="llava_llama", help="key-map table name or JSON path (default: llava_llama)")
    parser.add_argument("--vision-tower", help="CLIP-family model folder or Hub id supplying the vision tower")
    parser.add_argument("--tokenizer", help="the language model's tokenizer folder; also saves a LlamoProcessor")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    parser.add_argument("--allow-unexpected", action="store_true", help="report unmatched source keys instead of failing")
    parser.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    parser.add_argument("--seed", type=int, default=0, help="seed for freshly initialised modules")
    args = parser.parse_args(argv)
    if args.output is None and not args.dry_run:
        parser.error("--output is required unless --dry-run is given")
    report = convert_llava_checkpoint(
        args.checkpoint, args.config, None if args.dry_run else args.output, table=args.table,
        vision_tower=args.vision_tower, tokenizer=args.tokenizer, dtype=args.dtype,
        allow_unexpected=args.allow_unexpected, seed=args.seed,
    )
    print(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
