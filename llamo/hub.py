"""Sharing fine-tuned LLaMo checkpoints: `push_to_hub`-ready folders with a generated model card.

A ready folder holds the model (`config.json`, `model.safetensors` or a peft adapter), the processor
(`processor_config.json`, tokenizer files, `chat_template.jinja`), the remote-code modules (`configuration_llamo.py`,
`modeling_llamo.py`, `processing_llamo.py` and the modules it imports, so `trust_remote_code=True` works where the
`llamo` package is not installed) and a `README.md` model card whose YAML header carries the licence, base model,
datasets, tags and a `model-index` with the evaluation table.

    from llamo.hub import prepare_hub_folder
    prepare_hub_folder("out/final", base_model="HuggingFaceTB/SmolLM2-135M-Instruct", datasets=["babel-qa"],
                       eval_results={"BABEL-QA": {"accuracy": 0.46}}, training={"stage": "instruction", ...})
    # then: huggingface_hub.upload_folder(repo_id=..., folder_path="out/final")
"""

from __future__ import annotations

import json
import os
import textwrap

REMOTE_CODE_FILES = ("configuration_llamo.py", "modeling_llamo.py")
PROCESSOR_REMOTE_CODE_FILES = ("processing_llamo.py",)
MODEL_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
PAPER = "https://arxiv.org/abs/2411.16805"

# Where the paper's numbers (SPEC.md section 5) are a useful comparison for an evaluation table.
PAPER_RESULTS = {"BABEL-QA": {"accuracy": 0.458}, "MoVid-Bench (motion)": {"accuracy": 0.5532},
                 "MoVid-Bench (video)": {"accuracy": 0.5233}}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_model_card(
    model_name: str,
    base_model: str | None = None,
    language_model: str | None = None,
    datasets=(),
    training: dict | None = None,
    eval_results: dict | None = None,
    license: str = "apache-2.0",
    license_name: str | None = None,
    license_link: str | None = None,
    repo_id: str | None = None,
    config: dict | None = None,
    is_adapter: bool = False,
    description: str | None = None,
) -> str:
    """The text of a model card (YAML header + markdown).

    Args:
        model_name: display name (also the `model-index` name).
        base_model: the checkpoint training started from (Hub id or description); `base_model` in the header.
        language_model: the language model inside (e.g. SmolLM2-135M-Instruct), for the description.
        datasets: dataset names/ids trained on.
        training: the training setup (stage, LoRA, steps, learning rate...), shown as a table.
        eval_results: `{dataset name: {metric: value}}`, shown as a table and in `model-index`.
        license, license_name, license_link: the licence fields of the header (`license: other` needs a name/link).
        repo_id: where it will live (for the usage snippet); defaults to `model_name`.
        config: `LlamoConfig.to_dict()`, for the architecture summary.
        is_adapter: the folder holds a peft adapter rather than merged weights.
    """
    from huggingface_hub import EvalResult, ModelCardData

    repo_id = repo_id or model_name
    results = []
    for dataset_name, metrics in (eval_results or {}).items():
        for metric, value in metrics.items():
            if isinstance(value, (int, float)):
                results.append(EvalResult(
                    task_type="visual-question-answering", task_name="Human motion question answering",
                    dataset_type=dataset_name.lower().replace(" ", "-"), dataset_name=dataset_name,
                    metric_type=metric, metric_value=float(value), metric_name=metric,
                ))
    card_data = ModelCardData(
        license=license,
        license_name=license_name,
        license_link=license_link,
        base_model=base_model,
        library_name="peft" if is_adapter else "transformers",
        pipeline_tag="video-text-to-text",
        language=["en"],
        tags=["llamo", "human-motion", "motion-understanding", "video-understanding", "smpl", "custom_code"]
        + (["lora", "peft"] if is_adapter else []),
        datasets=list(datasets) or None,
        model_name=model_name,
        eval_results=results or None,
    )

    config = config or {}
    text_config = config.get("text_config") or {}
    vision_config = config.get("vision_config") or {}
    arch = [
        ("language model", language_model or text_config.get("_name_or_path") or text_config.get("model_type", "?")),
        ("language model size", f"hidden {text_config.get('hidden_size', '?')}, {text_config.get('num_hidden_layers', '?')} layers"),
        ("vision tower", f"{vision_config.get('model_type', '?')} ({vision_config.get('image_size', '?')} px), frozen"),
        ("motion representation", f"{config.get('motion_representation', '?')} ({config.get('motion_feature_dim', '?')}-d per frame)"),
        ("key frames per clip (K)", config.get("num_key_frames", "?")),
        ("frame selection", config.get("frame_selection", "?")),
    ]
    arch_table = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in arch)
    train_table = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in (training or {}).items()) or "| (not recorded) | |"
    if eval_results:
        metric_names = sorted({m for metrics in eval_results.values() for m in metrics})
        header = "| dataset | " + " | ".join(metric_names) + " | LLaMo paper |\n|---|" + "---|" * (len(metric_names) + 1)
        lines = []
        for dataset_name, metrics in eval_results.items():
            paper = PAPER_RESULTS.get(dataset_name, {})
            paper_text = ", ".join(f"{k} {_fmt(v)}" for k, v in paper.items()) or "-"
            lines.append(f"| {dataset_name} | " + " | ".join(_fmt(metrics.get(m, "-")) for m in metric_names) + f" | {paper_text} |")
        eval_table = header + "\n" + "\n".join(lines)
    else:
        eval_table = "No evaluation was recorded for this checkpoint."

    if is_adapter:
        load = textwrap.dedent(f"""\
            from peft import PeftModel
            base = AutoModelForImageTextToText.from_pretrained("{base_model or 'BASE_CHECKPOINT'}", trust_remote_code=True, dtype=torch.float32)
            model = PeftModel.from_pretrained(base, "{repo_id}")
            processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)""")
    else:
        load = textwrap.dedent(f"""\
            model = AutoModelForImageTextToText.from_pretrained("{repo_id}", trust_remote_code=True, dtype=torch.float32)
            processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)""")
    usage = textwrap.dedent("""\
        ```python
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        {load}

        messages = [{{"role": "user", "content": [
            {{"type": "motion", "path": "walk.npz"}},   # AMASS .npz, smplx arrays, joints (T,22,3) .npy, HumanML3D (T,263)
            {{"type": "video", "path": "walk.mp4"}},    # optional; shares the clip's <motion> marker
            {{"type": "text", "text": "Which direction does the person walk?"}},
        ]}}]
        inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True,
                                               return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=32)
        print(processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
        ```""").format(load=textwrap.indent(load, "").replace("\n", "\n"))

    body = f"""
# {model_name}

{description or f"A fine-tuned **LLaMo** (Large Language and Human Motion Assistant, *Human Motion Instruction Tuning*, CVPR 2025, [{PAPER}]({PAPER})): it answers questions about human behaviour from human motion (SMPL-family parameters or joints), video, or both. Motion stays continuous, one feature per frame; the question selects the K key frames the language model sees (Motion Feature Enhancer + Cross Talker)."}

This is an independent reimplementation; the paper's authors released no code or weights.{" This folder holds a LoRA **adapter** (plus the new modules) for the base checkpoint below." if is_adapter else ""}

## Model

| | |
|---|---|
| base checkpoint | {base_model or "-"} |
{arch_table}

## Training

| setting | value |
|---|---|
{train_table}

Datasets: {", ".join(datasets) if datasets else "not recorded"}.

## Evaluation

{eval_table}

## Usage

The folder carries its own code (`configuration_llamo.py`, `modeling_llamo.py`, `processing_llamo.py`), so
`trust_remote_code=True` loads it without the `llamo` package; with the package installed, `import modeling_llamo`
registers the classes and `trust_remote_code` is not needed.

{usage}

## Licence

The weights and code here are released under `{license}`{f" ({license_name}{', ' + license_link if license_link else ''})" if license_name else ""}.
The base language model keeps its own licence. Motion data used for training (AMASS-derived sets such as HumanML3D,
BABEL and BABEL-QA, KIT-ML) come with their own terms, and SMPL-family body models are licensed separately and are
not included: check them before commercial use.

## Citation

```bibtex
@inproceedings{{li2025llamo,
  title     = {{Human Motion Instruction Tuning}},
  author    = {{Li, Lei and Jia, Sen and Wang, Jianhao and Jiang, Zhongyu and Zhou, Feng and Dai, Ju and Zhang, Tianfang and Wu, Zongkai and Hwang, Jenq-Neng}},
  booktitle = {{CVPR}},
  year      = {{2025}}
}}
```
"""
    return f"---\n{card_data.to_yaml()}\n---\n{body}"


def check_hub_folder(folder: str) -> list[str]:
    """What a folder lacks to be pushed and loaded with `trust_remote_code` (empty when ready)."""
    problems = []
    files = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    is_adapter = "adapter_config.json" in files
    if not is_adapter and "config.json" not in files:
        problems.append("config.json missing")
    if not any(name in files for name in MODEL_WEIGHT_FILES):
        problems.append("no weights (model.safetensors / adapter_model.safetensors)")
    if not is_adapter:
        problems += [f"{name} missing (remote code)" for name in REMOTE_CODE_FILES if name not in files]
    problems += [f"{name} missing (processor remote code)" for name in PROCESSOR_REMOTE_CODE_FILES if name not in files]
    if "processor_config.json" not in files:
        problems.append("processor_config.json missing")
    if "README.md" not in files:
        problems.append("README.md (model card) missing")
    if "config.json" in files:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
            auto_map = json.load(handle).get("auto_map", {})
        if "AutoModelForImageTextToText" not in auto_map:
            problems.append("config.json has no auto_map for AutoModelForImageTextToText")
    return problems


def prepare_hub_folder(folder: str, model_name: str | None = None, **card_kwargs) -> str:
    """Write the model card into a folder saved by `save_pretrained` (model + processor) and check it is complete.

    `card_kwargs` go to `render_model_card`; `config` defaults to the folder's `config.json` and `is_adapter` to
    whether it holds a peft adapter. Raises `ValueError` listing what is missing. Returns the card's path.
    """
    files = set(os.listdir(folder))
    card_kwargs.setdefault("is_adapter", "adapter_config.json" in files)
    if "config" not in card_kwargs and "config.json" in files:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
            card_kwargs["config"] = json.load(handle)
    if card_kwargs["is_adapter"] and not card_kwargs.get("base_model"):
        with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as handle:
            card_kwargs["base_model"] = json.load(handle).get("base_model_name_or_path")
    path = os.path.join(folder, "README.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_model_card(model_name or os.path.basename(os.path.abspath(folder)), **card_kwargs))
    problems = check_hub_folder(folder)
    if problems:
        raise ValueError(f"{folder} is not ready to push: " + "; ".join(problems))
    return path


__all__ = ["PAPER_RESULTS", "check_hub_folder", "prepare_hub_folder", "render_model_card"]
