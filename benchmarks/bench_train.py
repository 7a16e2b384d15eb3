"""Training benchmark (issue: the fine-tuning path): ratios against baselines measured in the same process.

1. Training step time (forward + backward + AdamW step, batch `--batch-size`) of LLaMo in the instruction stage
   (LoRA r=64/alpha=16 on q,v of the language model + the new modules fully trained, as `examples/finetune.py`
   does) with one 32-frame motion clip per sample, divided by the step time of the bare language model with the
   same LoRA on the same text (`--text-length` tokens). Goal <= 1.3x. LLaMo's sequence is text + K = 16 placeholder
   positions; the bare LM is also timed at text + K tokens to separate the cost of those positions from the cost of
   the motion modules. `--video` adds the clip's 32 video frames through a frozen vision tower (reported apart: the
   tower's cost is the vision encoder's, not LLaMo's). These steps all compute the loss over full logits, as the
   bare LM does; LLaMo's own training loss (`answer_loss`: the LM head at labelled positions only) is timed
   against that as a further ratio (`--answer-tokens` sets how many of the text tokens are labelled; the demo's
   answers are about 3 of 50).
2. The data pipeline: samples/s of `LlamoDataCollator` (decoding the files, motion features, tokenising, labels)
   in one process, for motion-only rows (an AMASS-style `.npz`, 10 s at 120 fps) and motion + video rows (a bundled
   mp4, 32 frames at 224 px), against the training step's samples/s. A ratio >= 1 means one loader process keeps up
   with training; `dataloader_num_workers` multiplies the loader's rate.

Language model: a random Llama shaped like SmolLM2-135M (timing depends on shapes, not weights). Everything random
or bundled: no downloads. Run: `python benchmarks/bench_train.py` (CPU; `--device cuda` on a GPU). On CPU the default
clock is this process's CPU time with one torch thread, so that other jobs on a shared machine don't distort the
ratios; `--clock wall --threads N` measures elapsed time instead.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transformers import AutoModelForCausalLM, LlamaConfig
from transformers.utils import logging

from llamo.data.conversations import LlamoDataCollator, records_to_dataset
from llamo.training.tiny import tiny_tokenizer
from llamo.training.trainer import DEFAULT_LORA_TARGETS, prepare_model_for_stage
from modeling_llamo import LlamoConfig, LlamoForConditionalGeneration

logging.set_verbosity_error()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOLLM2_135M = dict(
    model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
    tie_word_embeddings=True, pad_token_id=2, eos_token_id=None, bos_token_id=1,
)
TOWER = dict(model_type="siglip_vision_model", hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
             num_attention_heads=6, image_size=224, patch_size=16)
MOTION_TOKEN = 49151
K = 16


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def median_step(step, repeats, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = clock()
        step()
        times.append(clock() - start)
    return statistics.median(times)


def make_step(model, batch, answer_loss=False):
    """One training step. By default the loss is the usual causal-LM loss over the logits of every position (what
    the bare LM computes, so the overhead ratio compares like with like); `answer_loss=True` runs LLaMo's
    `answer_loss` instead (the LM head at labelled positions only, `logits_to_keep=1`), as `examples/train_demo.py`
    and `LlamoTrainer` do."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    inputs = {name: value for name, value in batch.items() if name != "labels"}
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    vocab_size = base.config.get_text_config().vocab_size

    def step():
        if answer_loss:
            loss = model(**batch, logits_to_keep=1).loss
        else:
            loss = base.loss_function(logits=model(**inputs).logits, labels=batch["labels"], vocab_size=vocab_size)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if batch["input_ids"].is_cuda:
            torch.cuda.synchronize()

    return step


def text_batch(batch_size, length, device, generator, answer_tokens=None):
    ids = torch.randint(3, 49000, (batch_size, length), generator=generator)
    labels = ids.clone()
    answer_tokens = length // 2 if answer_tokens is None else answer_tokens
    labels[:, : length - answer_tokens] = -100  # the prompt is masked, as in instruction tuning
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)}


def bench_step(args):
    """Step times, measured in interleaved rounds (bare LM, bare LM at text + K, LLaMo[, LLaMo + video]) so that
    machine load hits every variant alike; the ratios are medians of per-round ratios."""
    from peft import LoraConfig, get_peft_model

    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)

    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(LlamaConfig(**SMOLLM2_135M)).to(device)
    lm.requires_grad_(False)
    lm = get_peft_model(lm, LoraConfig(r=64, lora_alpha=16, target_modules=list(DEFAULT_LORA_TARGETS), lora_dropout=0.0))

    config = LlamoConfig(text_config=SMOLLM2_135M, vision_config=TOWER, motion_token_id=MOTION_TOKEN, hidden_size=512,
                         num_attention_heads=8, intermediate_size=1024, num_key_frames=K)
    torch.manual_seed(0)
    llamo = LlamoForConditionalGeneration(config).to(device)
    # LoRA r=64/alpha=16 on the LM's q,v (the same projections as the bare LM's) + the new modules fully trained
    llamo = prepare_model_for_stage(llamo, stage="instruction", lora_r=64, lora_alpha=16, lora_dropout=0.0)

    batch = text_batch(args.batch_size, args.text_length, device, generator, args.answer_tokens)
    ids = torch.cat([batch["input_ids"][:, :8], torch.full((args.batch_size, K), MOTION_TOKEN, device=device),
                     batch["input_ids"][:, 8:]], dim=1)
    labels = torch.cat([batch["labels"][:, :8], torch.full((args.batch_size, K), -100, device=device),
                        batch["labels"][:, 8:]], dim=1)
    guidance = torch.zeros_like(ids)
    guidance[:, 8 + K : K + args.text_length // 2] = 1  # the question: the prompt after the clip
    frames = args.frames
    llamo_batch = {
        "input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "guidance_mask": guidance,
        "motion_values": torch.randn(args.batch_size, frames, config.motion_feature_dim, generator=generator).to(device),
        "motion_mask": torch.ones(args.batch_size, frames, dtype=torch.long, device=device),
    }
    steps = {
        "bare_lm": make_step(lm, batch),
        "bare_lm_plus_k": make_step(lm, text_batch(args.batch_size, args.text_length + K, device, generator,
                                                   args.answer_tokens)),
        "llamo_motion": make_step(llamo, llamo_batch),
        "llamo_motion_answer_loss": make_step(llamo, llamo_batch, answer_loss=True),
    }
    if args.video:
        video_batch = dict(llamo_batch)
        video_batch["pixel_values_videos"] = torch.randn(args.batch_size, frames, 3, 224, 224, generator=generator).to(device)
        video_batch["frame_mask"] = torch.ones(args.batch_size, frames, dtype=torch.long, device=device)
        steps["llamo_motion_video"] = make_step(llamo, video_batch)
    for step in steps.values():  # warm-up
        step()
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = clock()
            step()
            times[name].append(clock() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratios = {name: statistics.median(a / b for a, b in zip(values, times["bare_lm"])) for name, values in times.items()}
    ratios["llamo_motion_vs_bare_lm_plus_k"] = statistics.median(
        a / b for a, b in zip(times["llamo_motion"], times["bare_lm_plus_k"]))
    ratios["answer_loss_vs_full_logits_loss"] = statistics.median(
        a / b for a, b in zip(times["llamo_motion_answer_loss"], times["llamo_motion"]))
    return medians, ratios


def synthetic_amass(path, seconds=10.0, fps=120.0, seed=0):
    rng = np.random.default_rng(seed)
    frames = int(seconds * fps)
    t = np.arange(frames)[:, None] / fps
    poses = 0.3 * np.sin(2 * np.pi * 0.8 * t + rng.uniform(0, 6.28, (1, 156))) * (rng.random((1, 156)) < 0.5)
    trans = np.concatenate([0.5 * t, 0.02 * np.sin(6 * t), np.full_like(t, 0.9)], axis=1)
    np.savez(path, poses=poses.astype(np.float32), trans=trans.astype(np.float32), mocap_framerate=np.array(fps),
             betas=np.zeros(16, np.float32), gender=np.array("neutral"))
    return path


def bench_pipeline(args, folder):
    from processing_llamo import LlamoFrameProcessor, LlamoMotionProcessor, LlamoProcessor

    processor = LlamoProcessor(image_processor=LlamoFrameProcessor(size=224, num_frames=args.frames),
                               feature_extractor=LlamoMotionProcessor(), tokenizer=tiny_tokenizer(), num_key_frames=K)
    video = os.path.join(REPO, "tests", "fixtures", "videos", "example1.mp4")
    question = "what does the person do before they turn left and which hand do they wave with ?"
    rows = {"motion": [], "motion_video": []}
    for i in range(args.batch_size):
        motion = synthetic_amass(os.path.join(folder, f"m{i}.npz"), seed=i)
        for kind in rows:
            clip = [{"type": "motion", "text": None, "path": motion, "fps": None, "up_axis": None}]
            if kind == "motion_video":
                clip = [{"type": "video", "text": None, "path": video, "fps": None, "up_axis": None}] + clip
            rows[kind].append({"id": f"{kind}{i}", "metadata": None, "messages": [
                {"role": "user", "content": clip + [{"type": "text", "text": question, "path": None, "fps": None, "up_axis": None}]},
                {"role": "assistant", "content": [{"type": "text", "text": "the person walks forward then waves with the left hand .",
                                                   "path": None, "fps": None, "up_axis": None}]}]})
    collator = LlamoDataCollator(processor)
    out = {}
    for kind, data in rows.items():
        dataset = records_to_dataset(data)
        examples = [dataset[i] for i in range(len(dataset))]
        seconds = median_step(lambda examples=examples: collator(examples), args.repeats, warmup=1)
        out[kind] = args.batch_size / seconds
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--text-length", type=int, default=128, help="text tokens per sample (prompt + answer)")
    parser.add_argument("--answer-tokens", type=int, default=None,
                        help="labelled (answer) tokens per sample (default: half the text)")
    parser.add_argument("--frames", type=int, default=32, help="frames of the clip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--video", action="store_true", help="also time a motion + video clip (vision tower forward)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                        help="cpu: this process's CPU time (robust when other jobs share the machine; use with "
                             "--threads 1); wall: elapsed time (use on a quiet machine or a GPU)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.device != "cpu" and args.clock == "cpu":
        clock = CLOCKS["wall"]  # CPU time says nothing about GPU kernels
    if args.threads is None and clock is CLOCKS["cpu"]:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)

    step, ratios = bench_step(args)
    with tempfile.TemporaryDirectory() as folder:
        pipeline = bench_pipeline(args, folder)
    train_sps = args.batch_size / step["llamo_motion"]
    report = {
        "device": args.device, "threads": torch.get_num_threads(), "clock": "cpu" if clock is CLOCKS["cpu"] else "wall", "batch_size": args.batch_size,
        "text_length": args.text_length, "frames": args.frames, "step_seconds": step, "ratios_vs_bare_lm": ratios,
        "train_samples_per_second": train_sps, "loader_samples_per_second": pipeline,
        "loader_over_train": {kind: sps / train_sps for kind, sps in pipeline.items()},
    }

    answers = args.text_length // 2 if args.answer_tokens is None else args.answer_tokens
    print(f"Training step, batch {args.batch_size}, {args.text_length} text tokens ({answers} labelled), "
          f"{args.frames}-frame clip, "
          f"{args.device} ({torch.get_num_threads()} threads, {'CPU' if clock is CLOCKS['cpu'] else 'wall'} time); "
          f"medians of {args.repeats} interleaved rounds:")
    print(f"  bare LM + LoRA (q,v r=64)            {step['bare_lm'] * 1e3:8.1f} ms")
    print(f"  bare LM + LoRA at text + K tokens    {step['bare_lm_plus_k'] * 1e3:8.1f} ms   ratio {ratios['bare_lm_plus_k']:.2f}x")
    print(f"  LLaMo instruction stage, motion      {step['llamo_motion'] * 1e3:8.1f} ms   ratio {ratios['llamo_motion']:.2f}x "
          f"(goal <= 1.3x); {ratios['llamo_motion_vs_bare_lm_plus_k']:.2f}x vs the LM at the same positions")
    print(f"  LLaMo, answer-only loss (answer_loss) {step['llamo_motion_answer_loss'] * 1e3:7.1f} ms   "
          f"{ratios['answer_loss_vs_full_logits_loss']:.2f}x the same step with the loss over full logits")
    if "llamo_motion_video" in step:
        print(f"  LLaMo, motion + video (frozen tower) {step['llamo_motion_video'] * 1e3:8.1f} ms   "
              f"ratio {ratios['llamo_motion_video']:.2f}x (vision tower forward included)")
    print(f"Data pipeline, one process: training consumes {train_sps:.2f} samples/s")
    for kind, sps in pipeline.items():
        print(f"  collator, {kind:<13} {sps:8.1f} samples/s   = {sps / train_sps:.1f}x the training rate")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
