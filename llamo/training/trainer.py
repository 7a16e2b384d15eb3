"""The paper's training stages on `transformers.Trainer`, peft LoRA, and generation-based evaluation.

Stages (SPEC.md section 4):

* ``alignment``: only the new modules train (motion encoder unless frozen by config, Motion Estimator, Motion
  Feature Enhancer, Cross Talker, projector, text gate, the frame encoder's linear map); video tower and language
  model frozen.
* ``instruction``: the same new modules plus the language model, by default through a peft LoRA on the attention
  `q_proj`/`v_proj` of every layer (the new modules are peft `modules_to_save`, so they train fully and travel in
  the adapter). ``lm_training="full"`` trains the whole language model instead; ``"frozen"`` keeps it frozen.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re

import torch
from transformers import Trainer

from ..data.conversations import LlamoGenerationCollator

logger = logging.getLogger(__name__)

STAGES = ("alignment", "instruction")
LM_TRAINING = ("lora", "full", "frozen")
DEFAULT_LORA_TARGETS = ("q_proj", "v_proj")


def unwrap_peft(model):
    """The `LlamoForConditionalGeneration` inside a peft model (or the model itself)."""
    if hasattr(model, "get_base_model"):
        return model.get_base_model()
    return model


def new_module_names(model) -> list[str]:
    """Fully-qualified names of the modules LLaMo adds to its language model that train in every stage."""
    backbone = model.model
    names = []
    if not model.config.freeze_motion_encoder:
        names.append("model.motion_encoder")
    for name in ("motion_estimator", "enhancer", "cross_talker", "multi_modal_projector", "text_gate", "time_encoding"):
        module = getattr(backbone, name, None)
        if module is not None and any(True for _ in module.parameters()):
            names.append(f"model.{name}")
    names.append("model.frame_encoder.proj")
    return names


def lora_target_regex(targets=DEFAULT_LORA_TARGETS) -> str:
    """A peft `target_modules` regex that hits the language model's attention projections only (not the Cross
    Talker's or the vision tower's, which have their own `q_proj`s)."""
    alternatives = "|".join(re.escape(t) for t in targets)
    return rf".*model\.language_model\.layers\.\d+\.self_attn\.({alternatives})"


def prepare_model_for_stage(
    model,
    stage: str = "instruction",
    lm_training: str | None = None,
    lora_r: int = 64,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    lora_targets=DEFAULT_LORA_TARGETS,
):
    """Set the trainable parameters of `model` for a stage; returns the model to train (a peft model for LoRA).

    Args:
        stage: `"alignment"` or `"instruction"` (module docstring).
        lm_training: `"lora"`, `"full"` or `"frozen"`; default `"frozen"` for alignment, `"lora"` for instruction.
        lora_r, lora_alpha, lora_dropout, lora_targets: the LoRA (defaults: MotionLLM's r=64, alpha=16 on q, v).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}.")
    lm_training = lm_training or ("frozen" if stage == "alignment" else "lora")
    if lm_training not in LM_TRAINING:
        raise ValueError(f"lm_training must be one of {LM_TRAINING}, got {lm_training!r}.")
    if stage == "alignment" and lm_training != "frozen":
        raise ValueError("The alignment stage trains the new modules only; use stage='instruction' to train the LM.")
    model.set_paper_trainable_parameters(train_language_model=lm_training == "full")
    if lm_training != "lora":
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=lora_target_regex(lora_targets),
        modules_to_save=new_module_names(model),
        bias="none",
    )
    return get_peft_model(model, config)


def trainable_summary(model) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%)"


# ----------------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------------


def _normalize(text: str) -> str:
    try:
        from ..evaluation.answers import normalize_text
    except ImportError:  # pragma: no cover
        normalize_text = str.lower
    return " ".join(re.sub(r"[.,;:!?]+", " ", normalize_text(text or "")).split())


def score_answer(prediction: str, reference: str, metadata: dict | None = None) -> bool:
    """Whether a generated answer is right.

    BABEL-QA rows (metadata `query_type`) are scored as the benchmark is: the concept extracted from the answer
    with the query type's closed vocabulary must equal the gold answer (`llamo.evaluation.answers`). Anything else
    is a normalised exact match (case, punctuation and spacing ignored).
    """
    metadata = metadata or {}
    query_type = metadata.get("query_type")
    if query_type:
        try:
            from ..evaluation.answers import extract_choice, vocabulary_for_query_type

            vocabulary = vocabulary_for_query_type(query_type)
        except (ImportError, ValueError):
            vocabulary = None
        if vocabulary is not None:
            return extract_choice(prediction, vocabulary) == (metadata.get("answer") or reference)
    return _normalize(prediction) == _normalize(reference)


# ----------------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------------


class LlamoTrainer(Trainer):
    """`Trainer` plus generation-based evaluation: at every evaluation, up to `generation_max_samples` rows of
    `generation_eval_dataset` are answered with `generate` (greedy) and scored with `score_answer`; the metrics
    `<prefix>_accuracy` (and `<prefix>_accuracy_<query_type>` when rows carry one) join the loss metrics, and the
    predictions are written to `output_dir/predictions/step-<N>.jsonl`. Under several processes each rank answers
    its share and the counts are summed."""

    def __init__(self, *args, generation_eval_dataset=None, generation_max_samples: int = 200,
                 max_new_tokens: int = 32, default_motion_fps: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.generation_eval_dataset = generation_eval_dataset
        self.generation_max_samples = generation_max_samples
        self.max_new_tokens = max_new_tokens
        self.generation_collator = LlamoGenerationCollator(self.processing_class, default_motion_fps=default_motion_fps)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # A training step reads only the loss, which the model computes at the answer positions alone
        # (`answer_loss`); asking for the last position's logits skips projecting every position onto the
        # vocabulary. Evaluation (return_outputs) and custom losses that read the logits get them all.
        if model.training and not return_outputs and self.label_smoother is None and self.compute_loss_func is None:
            inputs = {**inputs, "logits_to_keep": 1}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def get_eval_dataloader(self, eval_dataset=None):
        # Evaluation scores the data as it is: the collator's training-time augmentation stays out of it.
        training_collator = self.data_collator
        if getattr(training_collator, "augment", None) is None:
            return super().get_eval_dataloader(eval_dataset)
        self.data_collator = dataclasses.replace(training_collator, augment=None)
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = training_collator

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        metrics = {}
        if eval_dataset is not None or self.eval_dataset is not None:
            metrics.update(super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix))
        if self.generation_eval_dataset is not None and self.generation_max_samples > 0:
            generated = self.generation_metrics(metric_key_prefix)
            self.log(generated)
            metrics.update(generated)
        return metrics

    @torch.no_grad()
    def generation_metrics(self, metric_key_prefix: str = "eval") -> dict:
        dataset = self.generation_eval_dataset
        count = min(len(dataset), self.generation_max_samples)
        rank, world = self.args.process_index, self.args.world_size
        mine = list(range(rank, count, world))
        batch_size = self.args.per_device_eval_batch_size
        num_batches = math.ceil(math.ceil(count / world) / batch_size)  # equal on every rank (synced generation)
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        synced = bool(self.is_fsdp_enabled or getattr(self, "is_deepspeed_enabled", False))
        tokenizer = self.processing_class.tokenizer
        records, totals = [], {}
        for start in range(0, num_batches * batch_size, batch_size):
            indices = mine[start : start + batch_size]
            real = len(indices)
            if real == 0:  # keep the ranks in step under FSDP/ZeRO-3: generate on a dummy row, score nothing
                if not synced:
                    break
                indices = [0]
            rows = [dataset[i] for i in indices]
            batch, references, ids = self.generation_collator(rows)
            batch = batch.to(self.args.device)
            output = model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False, synced_gpus=synced,
                                    pad_token_id=tokenizer.pad_token_id)
            texts = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            for row, text, reference, sample_id in list(zip(rows, texts, references, ids))[:real]:
                metadata = json.loads(row["metadata"]) if row.get("metadata") else {}
                correct = score_answer(text, reference, metadata)
                group = metadata.get("query_type") or "all"
                hit, total = totals.get(group, (0, 0))
                totals[group] = (hit + int(correct), total + 1)
                records.append({"id": sample_id, "prediction": text.strip(), "reference": reference, "correct": correct})
        if was_training:
            model.train()
        groups = sorted(totals)
        if world > 1:  # every rank must agree on the groups: gather their names through the counts of a fixed order
            groups = sorted(set(sum(self._gather_object(groups), [])))
        counts = torch.tensor([[totals.get(g, (0, 0))[0], totals.get(g, (0, 0))[1]] for g in groups] or [[0, 0]],
                              dtype=torch.float64, device=self.args.device)
        if world > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        hits, total = float(counts[:, 0].sum()), float(counts[:, 1].sum())
        metrics = {f"{metric_key_prefix}_accuracy": hits / total if total else float("nan"),
                   f"{metric_key_prefix}_generation_samples": total}
        if len(groups) > 1 or (groups and groups[0] != "all"):
            for index, group in enumerate(groups):
                if counts[index, 1] > 0:
                    metrics[f"{metric_key_prefix}_accuracy_{group}"] = float(counts[index, 0] / counts[index, 1])
        if world > 1:
            records = sum(self._gather_object(records), [])
        if self.args.should_save:
            folder = os.path.join(self.args.output_dir, "predictions")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"step-{self.state.global_step}.jsonl"), "w", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps(record) + "\n")
        return metrics

    def _gather_object(self, value):
        from accelerate.utils import gather_object

        return gather_object([value])


def save_final_model(model, processor, output_dir: str, merge_lora: bool = True):
    """Write the trained model + processor to `output_dir`, ready for `from_pretrained` (and `push_to_hub`).

    A peft model is merged into the base weights (`merge_lora=True`, a plain LLaMo checkpoint) or saved as an
    adapter (adapter_config.json + adapter_model.safetensors, new modules included) plus the processor.
    Returns the saved model object (merged model, or the peft model).
    """
    os.makedirs(output_dir, exist_ok=True)
    if hasattr(model, "peft_config"):
        if merge_lora:
            model = model.merge_and_unload()
        else:
            model.save_pretrained(output_dir)
            processor.save_pretrained(output_dir)
            return model
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return model


__all__ = [
    "LM_TRAINING",
    "STAGES",
    "LlamoTrainer",
    "lora_target_regex",
    "new_module_names",
    "prepare_model_for_stage",
    "save_final_model",
    "score_answer",
    "trainable_summary",
    "unwrap_peft",
]
