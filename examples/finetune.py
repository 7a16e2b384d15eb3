#!/usr/bin/env python
"""Fine-tune LLaMo on your own motion/video QA with `transformers.Trainer`.

Stages (SPEC.md section 4; `llamo.training.trainer`):
  --stage alignment     new modules only (motion encoder, estimator, enhancer, Cross Talker, projector, gate)
  --stage instruction   new modules + LoRA on the language model's q/v projections (peft) [default]

Data (`llamo.data.conversations` documents the JSON/JSONL format):
  --dataset jsonl       --train_file train.jsonl [--eval_file val.jsonl]              [default]
  --dataset humanml3d   --dataset_root HumanML3D/      (captions -> instruction pairs; splits train/val)
  --dataset kitml       --dataset_root KIT-ML/ --motion_dir smpl22_joints/
  --dataset babel_qa    --dataset_root babel-qa/

Examples:
  # one machine (CPU or one GPU)
  python examples/finetune.py --model llamo-smollm2 --train_file data/train.jsonl --eval_file data/val.jsonl \\
      --output_dir runs/lora --stage instruction --num_train_epochs 3 --eval_steps 200 --save_steps 200
  # resume after an interruption (same command + resume; "last" picks the newest checkpoint in output_dir)
  python examples/finetune.py ... --resume_from_checkpoint last
  # several processes / machines
  accelerate launch --config_file examples/accelerate/ddp.yaml examples/finetune.py ...
  accelerate launch --config_file examples/accelerate/fsdp.yaml examples/finetune.py ...
  accelerate launch --config_file examples/accelerate/deepspeed_zero2.yaml examples/finetune.py ...

Every `TrainingArguments` option is accepted (`--learning_rate`, `--bf16`, `--activation_checkpointing`, ...), with
defaults suited to LLaMo (below). Outputs in --output_dir: `checkpoint-*` (resumable), `predictions/step-*.jsonl`
(generation-based evaluation), `final/` (the merged model, or the adapter with --merge_lora false, plus processor,
remote code and model card: ready for `push_to_hub`), `adapter/` (the LoRA adapter), `*_results.json` (metrics).

Data order and resuming: the order of samples is a function of --seed (and --data_seed) only, and a resumed run
skips the batches already seen in the current epoch, so stopping at a checkpoint and resuming gives the weights of
an uninterrupted run. Caveats: resume with the same number of processes and batch size; with on-the-fly skipping of
bad media (--on_media_error skip) the skipped samples are skipped again after resuming, so the result is unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import transformers
from transformers import AutoModelForImageTextToText, AutoProcessor, HfArgumentParser, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

import modeling_llamo  # noqa: F401  (registers llamo with the Auto classes)
from llamo.data.adapters import babel_qa_conversations, humanml3d_conversations, kitml_conversations
from llamo.data.augment import MirrorMotion
from llamo.data.conversations import LlamoDataCollator, check_media, load_conversations
from llamo.hub import prepare_hub_folder
from llamo.training.trainer import (
    LlamoTrainer,
    prepare_model_for_stage,
    trainable_summary,
    unwrap_peft,
)

logger = logging.getLogger("llamo.finetune")


@dataclass
class ScriptArguments:
    model: str = field(metadata={"help": "LLaMo checkpoint to start from (folder or Hub id), e.g. the output of "
                                         "`python -m conversion.build_from_parts` or of a previous stage."})
    processor: str | None = field(default=None, metadata={"help": "Processor folder/id (default: --model)."})
    dtype: str = field(default="float32", metadata={"help": "Weights dtype when loading: float32 | bfloat16 | float16 "
                                                            "(use --bf16 for mixed precision on float32 weights)."})
    # stage
    stage: str = field(default="instruction", metadata={"help": "alignment | instruction."})
    lm_training: str | None = field(default=None, metadata={"help": "lora | full | frozen (default: frozen for "
                                                                    "alignment, lora for instruction)."})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_targets: str = field(default="q_proj,v_proj", metadata={"help": "Language-model attention projections "
                                                                         "to adapt, comma-separated."})
    merge_lora: bool = field(default=True, metadata={"help": "Merge the adapter into final/ (true) or keep final/ "
                                                             "as an adapter (false)."})
    # data
    dataset: str = field(default="jsonl", metadata={"help": "jsonl | humanml3d | kitml | babel_qa."})
    train_file: list[str] | None = field(default=None, metadata={"help": "Training .json/.jsonl file(s)."})
    eval_file: list[str] | None = field(default=None, metadata={"help": "Evaluation .json/.jsonl file(s)."})
    dataset_root: str | None = field(default=None, metadata={"help": "Root of a humanml3d/kitml/babel_qa layout."})
    train_split: str = field(default="train", metadata={"help": "Split of --dataset_root to train on."})
    eval_split: str | None = field(default="val", metadata={"help": "Split of --dataset_root to evaluate on "
                                                                    "(empty: none)."})
    motion_dir: str | None = field(default=None, metadata={"help": "kitml: folder of SMPL-22 motions by id."})
    media_root: str | None = field(default=None, metadata={"help": "Relative media paths start here (default: "
                                                                   "each JSON file's folder)."})
    on_media_error: str = field(default="raise", metadata={"help": "raise | skip: what a missing/corrupt media file "
                                                                   "does (reported with its path either way)."})
    check_media: bool = field(default=False, metadata={"help": "Decode every media file before training and list "
                                                               "all bad ones."})
    default_motion_fps: float | None = field(default=None, metadata={"help": "Frame rate of motion files that store "
                                                                           "none, when a row gives no `fps`."})
    max_length: int | None = field(default=None, metadata={"help": "Truncate sequences to this many tokens."})
    mirror_probability: float = field(default=0.0, metadata={"help": "Mirror each motion-only training conversation "
                                      "left-to-right with this probability, 'left' and 'right' swapped in its text "
                                      "(llamo.data.augment.MirrorMotion; needs a joints22 processor; evaluation "
                                      "data is never mirrored). Seeded by --seed per DataLoader worker; a resumed "
                                      "run draws afresh, so it is not bit-identical to an uninterrupted one."})
    key_frame_grounding: float = field(default=0.0, metadata={"help": "With --dataset babel_qa: weight of the "
                                       "key-frame grounding loss (LlamoConfig.key_frame_grounding_weight), which "
                                       "pulls each question's E6 frame scores onto the segments it is about, read "
                                       "from motion_concepts.json; 0: off (the paper's answer loss alone)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation rows."})
    # evaluation
    generation_eval_samples: int = field(default=200, metadata={"help": "Rows answered with generate() at each "
                                                                        "evaluation for the accuracy (0: off)."})
    max_new_tokens: int = field(default=32, metadata={"help": "Answer length for the generation-based evaluation."})
    # sharing
    model_name: str | None = field(default=None, metadata={"help": "Name in the model card (default: output folder)."})
    base_model: str | None = field(default=None, metadata={"help": "base_model in the model card (default: --model)."})
    license: str = field(default="apache-2.0", metadata={"help": "Licence field of the model card."})
    # debugging / tests
    stop_after_steps: int | None = field(default=None, metadata={"help": "Stop (as if interrupted) after this many "
                                                                         "optimizer steps, after saving a checkpoint."})
    dump_rank_state: str | None = field(default=None, metadata={"help": "Write each rank's seen sample ids and final "
                                                                        "trainable weights here (forces 0 workers)."})


@dataclass
class LlamoTrainingArguments(TrainingArguments):
    """`TrainingArguments` with defaults for LLaMo (multimodal batches, answer-only labels)."""

    output_dir: str | None = field(default="runs/llamo-finetune", metadata={"help": "Where checkpoints and final/ go."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Must stay False: the collator reads the "
                                                                         "raw rows."})
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "Label keys."})
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate (LoRA / new modules)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_steps: float = field(default=0.03, metadata={"help": "Warm-up steps (<1: a fraction of all steps)."})
    logging_steps: float = field(default=10, metadata={"help": "Log loss, learning rate, grad norm every N steps."})
    save_steps: float = field(default=200, metadata={"help": "Checkpoint every N steps."})
    save_total_limit: int | None = field(default=3, metadata={"help": "Keep the newest N checkpoints."})
    eval_strategy: str = field(default="steps", metadata={"help": "no | steps | epoch (off without eval data)."})
    eval_steps: float | None = field(default=200, metadata={"help": "Evaluate every N steps."})
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Evaluation batch size per device."})
    dataloader_num_workers: int = field(default=2, metadata={"help": "Media decoding workers per process."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "tensorboard, wandb, ... or none."})

    def __post_init__(self):
        if not torch.cuda.is_available():  # must be known before the distributed state is set up (gloo on CPU)
            self.use_cpu = True
        super().__post_init__()


def load_splits(script: ScriptArguments, processor):
    """(train rows, eval rows or None) as `datasets.Dataset`s."""
    on_error = script.on_media_error
    representation = processor.motion_processor.representation
    if script.dataset == "jsonl":
        if not script.train_file:
            raise SystemExit("--train_file is required with --dataset jsonl")
        train = load_conversations(script.train_file, media_root=script.media_root, on_error=on_error)
        evaluation = load_conversations(script.eval_file, media_root=script.media_root, on_error=on_error) if script.eval_file else None
    else:
        if not script.dataset_root:
            raise SystemExit(f"--dataset_root is required with --dataset {script.dataset}")
        builders = {
            "humanml3d": lambda split: humanml3d_conversations(script.dataset_root, split, representation=representation,
                                                               on_error=on_error),
            "kitml": lambda split: kitml_conversations(script.dataset_root, split, motion_dir=script.motion_dir,
                                                       on_error=on_error),
            "babel_qa": lambda split: babel_qa_conversations(script.dataset_root, split, on_error=on_error,
                                                             focus=script.key_frame_grounding > 0),
        }
        if script.dataset not in builders:
            raise SystemExit(f"--dataset must be jsonl, humanml3d, kitml or babel_qa, got {script.dataset!r}")
        train = builders[script.dataset](script.train_split)
        evaluation = builders[script.dataset](script.eval_split) if script.eval_split else None
    if script.max_train_samples is not None:
        train = train.select(range(min(script.max_train_samples, len(train))))
    if evaluation is not None and script.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(script.max_eval_samples, len(evaluation))))
    if script.check_media:
        train, _ = check_media(train, processor, on_error=on_error, default_motion_fps=script.default_motion_fps)
        if evaluation is not None:
            evaluation, _ = check_media(evaluation, processor, on_error=on_error, default_motion_fps=script.default_motion_fps)
    return train, evaluation


class StopAfterSteps(transformers.TrainerCallback):
    """Simulates an interruption: saves a checkpoint at `step` and stops there."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True
        return control


def dump_rank_state(folder, trainer, collator):
    os.makedirs(folder, exist_ok=True)
    rank = trainer.args.process_index
    model = unwrap_peft(trainer.accelerator.unwrap_model(trainer.model))
    weights = {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}
    torch.save(weights, os.path.join(folder, f"rank{rank}.pt"))
    with open(os.path.join(folder, f"rank{rank}.json"), "w") as handle:
        json.dump({"rank": rank, "world_size": trainer.args.world_size, "seen_ids": collator.seen_ids,
                   "global_step": trainer.state.global_step}, handle)


def main(argv=None):
    parser = HfArgumentParser((ScriptArguments, LlamoTrainingArguments))
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith((".json", ".yaml", ".yml")):
        loader = parser.parse_json_file if sys.argv[1].endswith(".json") else parser.parse_yaml_file
        script, args = loader(os.path.abspath(sys.argv[1]))
    else:
        script, args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO if args.process_index == 0 else logging.WARNING)
    transformers.utils.logging.set_verbosity_warning()
    push_final = args.push_to_hub  # pushed once, from final/, after training (not the raw output_dir on every save)
    args.push_to_hub = False
    if script.dump_rank_state:
        args.dataloader_num_workers = 0  # seen ids are recorded in this process
    transformers.set_seed(args.seed)

    if script.key_frame_grounding < 0 or (script.key_frame_grounding and script.dataset != "babel_qa"):
        raise SystemExit("--key_frame_grounding needs --dataset babel_qa (its segment labels) and a weight >= 0, got "
                         f"--dataset {script.dataset} and {script.key_frame_grounding}.")
    processor = AutoProcessor.from_pretrained(script.processor or script.model)
    train_dataset, eval_dataset = load_splits(script, processor)
    logger.info("data: %d training rows, %s evaluation rows", len(train_dataset), len(eval_dataset) if eval_dataset is not None else 0)
    if eval_dataset is None and args.eval_strategy != "no":
        args.eval_strategy = transformers.IntervalStrategy.NO
        args.do_eval = False

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[script.dtype]
    grounding = {"key_frame_grounding_weight": script.key_frame_grounding} if script.key_frame_grounding else {}
    model = AutoModelForImageTextToText.from_pretrained(script.model, dtype=dtype, **grounding)
    model = prepare_model_for_stage(
        model, stage=script.stage, lm_training=script.lm_training, lora_r=script.lora_r, lora_alpha=script.lora_alpha,
        lora_dropout=script.lora_dropout, lora_targets=[t.strip() for t in script.lora_targets.split(",") if t.strip()],
    )
    logger.info("stage %s: %s", script.stage, trainable_summary(model))
    if args.activation_checkpointing or args.gradient_checkpointing:
        if args.activation_checkpointing_kwargs is None and args.gradient_checkpointing_kwargs is None:
            args.activation_checkpointing_kwargs = {"use_reentrant": False}
        unwrap_peft(model).enable_input_require_grads()

    mirror = None
    if script.mirror_probability:
        mirror = MirrorMotion(processor.feature_extractor, probability=script.mirror_probability, seed=args.seed)
    collator = LlamoDataCollator(processor, on_error=script.on_media_error, max_length=script.max_length,
                                 default_motion_fps=script.default_motion_fps, record_ids=bool(script.dump_rank_state),
                                 augment=mirror, key_frame_targets=script.key_frame_grounding > 0)
    trainer = LlamoTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=processor,
        generation_eval_dataset=eval_dataset,
        generation_max_samples=script.generation_eval_samples,
        max_new_tokens=script.max_new_tokens,
        default_motion_fps=script.default_motion_fps,
        callbacks=[StopAfterSteps(script.stop_after_steps)] if script.stop_after_steps else None,
    )

    resume = args.resume_from_checkpoint
    if resume in ("last", "auto", "latest"):
        resume = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
        logger.info("resuming from %s", resume or "scratch (no checkpoint found)")
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    if script.dump_rank_state:
        dump_rank_state(script.dump_rank_state, trainer, collator)
    if script.stop_after_steps and trainer.state.global_step < trainer.state.max_steps:
        logger.info("stopped after step %d as asked (--stop_after_steps); resume with --resume_from_checkpoint last",
                    trainer.state.global_step)
        return trainer

    eval_metrics = {}
    if eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)

    save_outputs(trainer, script, args, processor, eval_metrics, train_dataset, result, push_final)
    return trainer


def save_outputs(trainer, script, args, processor, eval_metrics, train_dataset, result, push=False):
    """final/ (merged model or adapter + processor + card) and adapter/ (LoRA runs)."""
    final_dir = os.path.join(args.output_dir, "final")
    is_lora = hasattr(trainer.model, "peft_config") or hasattr(trainer.accelerator.unwrap_model(trainer.model), "peft_config")
    adapter_dir = os.path.join(args.output_dir, "adapter") if is_lora else None
    # save_model gathers sharded (FSDP / ZeRO-3) weights; every rank must call it.
    trainer.save_model(adapter_dir if is_lora and script.merge_lora else final_dir)
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return
    if is_lora and script.merge_lora:
        from peft import PeftModel

        base = AutoModelForImageTextToText.from_pretrained(script.model, dtype=torch.float32)
        merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
        merged.save_pretrained(final_dir)
    processor.save_pretrained(final_dir)
    if adapter_dir:
        processor.save_pretrained(adapter_dir)
    training = {
        "stage": script.stage,
        "language model training": script.lm_training or ("frozen" if script.stage == "alignment" else "lora"),
        "LoRA": f"r={script.lora_r}, alpha={script.lora_alpha}, dropout={script.lora_dropout}, on {script.lora_targets}" if is_lora else "-",
        "optimizer steps": trainer.state.global_step,
        "epochs": round(float(trainer.state.epoch or 0), 3),
        "training rows": len(train_dataset),
        "batch size (per device x devices x accumulation)": f"{args.per_device_train_batch_size} x {args.world_size} x {args.gradient_accumulation_steps}",
        "learning rate": f"{args.learning_rate:g} ({args.lr_scheduler_type})",
        "seed": args.seed,
        "final training loss": round(result.metrics.get("train_loss", float("nan")), 4),
        "transformers": transformers.__version__,
    }
    eval_table = {}
    if eval_metrics:
        name = script.dataset if script.dataset != "jsonl" else "evaluation set"
        eval_table[{"babel_qa": "BABEL-QA", "humanml3d": "HumanML3D", "kitml": "KIT-ML"}.get(name, name)] = {
            key[len("eval_"):]: value for key, value in eval_metrics.items()
            if key.startswith("eval_") and isinstance(value, (int, float))
            and not any(skip in key for skip in ("runtime", "per_second", "generation_samples", "epoch"))
        }
    datasets = [script.dataset] if script.dataset != "jsonl" else [os.path.basename(f) for f in script.train_file or []]
    prepare_hub_folder(final_dir, model_name=script.model_name or os.path.basename(os.path.abspath(args.output_dir)),
                       base_model=script.base_model or script.model, datasets=datasets, training=training,
                       eval_results=eval_table, license=script.license, repo_id=args.hub_model_id)
    logger.info("saved %s (ready for push_to_hub)", final_dir)
    if push:
        from huggingface_hub import upload_folder

        upload_folder(repo_id=args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir)), folder_path=final_dir,
                      token=args.hub_token)


if __name__ == "__main__":
    main()
