"""Train llamo-demo: SmolLM2-135M-Instruct + LLaMo's new modules + LoRA, on the motion-QA suite, on 2 CPU cores.

    python examples/train_demo.py                      # suite (generated if missing), build, train, save weights
    python examples/train_demo.py --steps 50 --output /tmp/demo-smoke
    python examples/train_demo.py --init-from llamo/demo_weights --modality mixed   # continue, with videos too

Deterministic for a seed (data order, initialisation and dropout-free training). Writes the shipped weights
(`llamo/demo_weights/` by default: new modules, LoRA, vision tower, `<motion>` row, fp16) and `recipe.json`;
`llamo.demo.materialize_demo()` turns them into a full checkpoint.
"""

import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from llamo import demo
from llamo.data.adapters import COUNT_ANSWER_STYLES, babel_qa_conversations
from llamo.data.augment import MirrorMotion
from llamo.data.conversations import LlamoDataCollator, row_metadata
from llamo.data.motion_qa import load_babel_qa, suite_has_videos


def motion_statistics(root, processor, limit, seed):
    """Feature mean/std over (a seeded sample of) the training motions: BABEL-QA joints, Z-up, 30 fps."""
    paths = sorted({item.motion_path for item in load_babel_qa(root, "train")})
    random.Random(seed).shuffle(paths)
    return processor.feature_extractor.compute_statistics(paths[:limit], fps=30.0, up_axis="z", update=False)


# --modality -> the (use_motion, use_video) forms each training question appears in
TRAINING_FORMS = {
    "motion": [(True, False)],
    "video": [(False, True)],
    "both": [(True, True)],
    "mixed": [(True, False), (False, True), (True, True)],
}


def training_conversations(root, modality, count_answers="digits", repeat=None, focus=False):
    """The suite's training questions, once per form of `TRAINING_FORMS[modality]`; counts as digits or words.

    `repeat` ({query_type: n}, e.g. `{"query_count": 2}`) shows every question of that type n times (n - 1 more
    copies), to weight a question type the model is weakest on without changing the suite. `focus` adds each
    question's segment spans to its metadata (the key-frame grounding loss's targets)."""
    from datasets import concatenate_datasets

    parts = [babel_qa_conversations(root, "train", representation="joints22", use_motion=use_motion,
                                    use_video=use_video, count_answers=count_answers, focus=focus)
             for use_motion, use_video in TRAINING_FORMS[modality]]
    dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    extra = []
    for query_type, times in (repeat or {}).items():
        if not isinstance(times, int) or times < 1:
            raise ValueError(f"repeat: {query_type} must repeat a whole number of times >= 1, got {times!r}")
        chosen = dataset.filter(lambda row: row_metadata(row)["query_type"] == query_type)
        if len(chosen) == 0:
            raise ValueError(f"repeat: the suite in {root} has no {query_type!r} training questions")
        extra += [chosen] * (times - 1)
    return concatenate_datasets([dataset, *extra]) if extra else dataset


def suite_identity(root):
    """What the recipe records about the suite trained on, read from the suite: its own seed and size, and whether
    it is a copy rendered with videos (the two demo suites hold the same questions and motions)."""
    with open(os.path.join(root, "metadata.json")) as f:
        summary = json.load(f)["summary"]
    return {"num_sequences": summary["num_sequences"], "seed": summary["seed"], "videos": suite_has_videos(root)}


def parse_overrides(pairs):
    """`["num_key_frames=8", "use_enhancer=false"]` -> `{"num_key_frames": 8, "use_enhancer": False}`."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--config expects KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value  # a bare string such as uniform
    return overrides


def lr_at(step, total, warmup):
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="motion-QA suite folder, generated if missing (default: the demo's; the one "
                        "rendered with videos for --modality video/both/mixed)")
    parser.add_argument("--num-sequences", type=int, default=demo.DEMO_SUITE_SIZE, help="size of a suite generated here")
    parser.add_argument("--suite-seed", type=int, default=demo.DEMO_SUITE_SEED, help="seed of a suite generated here "
                        "(the README's numbers are on the seed-0 suite; its held-out action pairs depend on the seed)")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3, help="new modules")
    parser.add_argument("--lora-lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame-selection", default="text_guided", choices=["text_guided", "uniform"])
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="LlamoConfig override for an ablation variant, value in JSON (e.g. num_key_frames=8, "
                        "use_enhancer=false); repeatable")
    parser.add_argument("--modality", default="motion", choices=list(TRAINING_FORMS),
                        help="what each training question comes with (video renders the suite's videos); mixed: "
                        "every question three times, with its motion, its video and both, so one model serves all "
                        "three inputs")
    parser.add_argument("--count-answers", choices=COUNT_ANSWER_STYLES, help="how counting answers are written in "
                        "the training targets: digits as in the suite (\"7\") or words (\"seven\": one first token "
                        "per count, where digits write 10-12 starting with \"1\"); default: the continued "
                        "recipe's, else digits")
    parser.add_argument("--mirror", type=float, default=0.0, metavar="P", help="mirror each motion-only training "
                        "conversation left-to-right with probability P, \"left\" and \"right\" swapped in its text "
                        "(llamo.data.augment.MirrorMotion; conversations with video are left as they are)")
    parser.add_argument("--repeat", action="append", default=[], metavar="QUERY_TYPE=N", help="show every training "
                        "question of a type N times (e.g. query_count=2: counting, the weakest type, twice); "
                        "repeatable")
    parser.add_argument("--grounding", type=float, default=0.0, metavar="W", help="add the key-frame grounding "
                        "loss with weight W (LlamoConfig.key_frame_grounding_weight): the question's E6 frame scores "
                        "are pulled onto the segments it is about, from the suite's segment labels")
    parser.add_argument("--span-head-steps", type=int, default=0, metavar="N", help="first train the asked-span head "
                        "alone for N steps (with --config use_asked_span_head=true; no language model runs, the "
                        "rest of the model frozen), then the --steps joint steps")
    parser.add_argument("--span-head-lr", type=float, default=1e-3)
    parser.add_argument("--count-head-steps", type=int, default=0, metavar="N", help="then train the count head "
                        "alone for N steps on the counting questions (with --config use_count_head=true; no language "
                        "model runs, the rest of the model frozen), before the --steps joint steps")
    parser.add_argument("--count-head-lr", type=float, default=1e-3)
    parser.add_argument("--output", default=demo.DEMO_WEIGHTS_DIR)
    parser.add_argument("--stats-motions", type=int, default=400)
    parser.add_argument("--save-every", type=int, default=0, help="also save the weights every N steps (a long run "
                        "that is stopped early keeps its latest state; the recipe records the steps done)")
    parser.add_argument("--init-from", help="continue from shipped demo weights in this folder (its recipe's "
                        "motion statistics are kept)")
    args = parser.parse_args(argv)
    changed_switches = parse_overrides(args.config)
    if args.grounding:
        changed_switches["key_frame_grounding_weight"] = args.grounding
    overrides = {"frame_selection": args.frame_selection, **changed_switches}
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    args.data = args.data or demo.suite_for(args.modality)
    demo.ensure_suite(args.data, num_sequences=args.num_sequences, seed=args.suite_seed,
                      render_videos=args.modality != "motion")
    if args.modality != "motion" and not suite_has_videos(args.data):
        raise SystemExit(f"--modality {args.modality} needs rendered videos, but the suite in {args.data} has none; "
                         "pass --data with a new folder (it is generated with videos) or render one with "
                         "examples/make_motion_qa.py.")

    previous = None
    continuable = demo.CONTINUABLE_SWITCHES + demo.ADDABLE_SWITCHES
    if args.init_from and (set(changed_switches) - set(continuable) or args.frame_selection != "text_guided"):
        raise SystemExit("--init-from continues a trained model with its own config; with it --config may set only "
                         f"{', '.join(continuable)} (they change no trained weight); --frame-selection and the other "
                         "switches apply only to a fresh training.")
    if args.init_from:
        with open(os.path.join(args.init_from, "recipe.json")) as f:
            previous = json.load(f)
        overrides = {**demo.recipe_config_overrides(previous), **changed_switches}
        model, processor, _ = demo.build_untrained(
            motion_mean=previous["motion_mean"], motion_std=previous["motion_std"], seed=previous.get("build_seed", 0),
            **overrides,
        )
        peft_model = demo.wrap_for_training(model)
        demo.load_shipped_state(peft_model, processor, os.path.join(args.init_from, "llamo-demo.safetensors"))
    else:
        model, processor, _ = demo.build_untrained(seed=args.seed, **overrides)
        mean, std = motion_statistics(args.data, processor, args.stats_motions, args.seed)
        processor.feature_extractor.mean, processor.feature_extractor.std = mean.tolist(), std.tolist()
        peft_model = demo.wrap_for_training(model)
    peft_model.train()

    args.count_answers = args.count_answers or (previous or {}).get("count_answers", "digits")
    repeat = parse_overrides(args.repeat)
    grounding, span_head = model.config.key_frame_grounding_weight > 0, model.config.use_asked_span_head
    count_head = model.config.use_count_head
    dataset = training_conversations(args.data, args.modality, args.count_answers, repeat,
                                     focus=grounding or span_head)
    mirror = MirrorMotion(processor.feature_extractor, probability=args.mirror, seed=args.seed) if args.mirror else None
    collator = LlamoDataCollator(processor, default_motion_fps=30.0, augment=mirror, key_frame_targets=grounding,
                                 asked_frame_targets=span_head, count_targets=count_head)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, collate_fn=collator, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))
    new_params = [p for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n]
    lora_params = [p for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" in n]
    optimizer = torch.optim.AdamW([{"params": new_params, "lr": args.lr}, {"params": lora_params, "lr": args.lora_lr}],
                                  weight_decay=0.0)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    print(f"{len(dataset)} training conversations; {sum(p.numel() for p in new_params + lora_params):,} trainable "
          f"parameters; {args.steps} steps of {args.batch_size}")

    from modeling_llamo.modeling_llamo import asked_span_loss, repetition_count_loss

    head_log, count_head_log = [], []
    if args.span_head_steps:
        if not span_head:
            raise SystemExit("--span-head-steps trains the asked-span head: add --config use_asked_span_head=true")
        head_log = fit_head_alone(
            peft_model, loader, args.span_head_steps, args.span_head_lr, "asked_span_head",
            lambda media, batch: asked_span_loss(media.asked_span_logits, batch["asked_frame_targets"]))
    if args.count_head_steps:
        if not count_head:
            raise SystemExit("--count-head-steps trains the count head: add --config use_count_head=true")
        counting = dataset.filter(lambda row: row_metadata(row)["query_type"] == "query_count")
        counting_loader = DataLoader(counting, batch_size=args.batch_size, shuffle=True, collate_fn=collator,
                                     drop_last=True, generator=torch.Generator().manual_seed(args.seed + 1))
        count_head_log = fit_head_alone(
            peft_model, counting_loader, args.count_head_steps, args.count_head_lr, "count_head",
            lambda media, batch: repetition_count_loss(media.repetition_counts, batch["count_targets"]))
    step, start, log, grounding_log, span_log, count_log = 0, time.time(), [], [], [], []
    save = _save_factory(args, previous, overrides, peft_model, processor, log, start, mirror,
                         {"grounding": grounding_log, "asked_span": span_log, "asked_span_head_only": head_log,
                          "count": count_log, "count_head_only": count_head_log})
    bar = tqdm(total=args.steps, desc="train")
    while step < args.steps:
        for batch in loader:
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * lr_at(step, args.steps, args.warmup)
            output = peft_model(**batch, logits_to_keep=1)  # the loop reads only the loss (answer_loss)
            loss = output.loss
            loss.backward()
            if output.grounding_loss is not None:
                grounding_log.append(output.grounding_loss.item())
            if output.asked_span_loss is not None:
                span_log.append(output.asked_span_loss.item())
            if output.count_loss is not None:
                count_log.append(output.count_loss.item())
            torch.nn.utils.clip_grad_norm_(new_params + lora_params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            log.append(loss.item())
            step += 1
            bar.update(1)
            if step % 20 == 0:
                terms = {"grounding": grounding_log, "span": span_log, "count": count_log}
                bar.set_postfix(loss=f"{np.mean(log[-20:]):.3f}",
                                **{name: f"{np.mean(values[-20:]):.3f}" for name, values in terms.items() if values})
            if args.save_every and step % args.save_every == 0 and step < args.steps:
                save(step)
            if step >= args.steps:
                break
    bar.close()
    save(step)


def fit_head_alone(peft_model, loader, steps, lr, head_name, loss_of):
    """Trains one head of the Cross Talker (`head_name`: "asked_span_head" or "count_head") alone, on the motion
    features of the model as it is (no language model runs: `LlamoModel.prompt_media_features`), before the joint
    steps: a fresh head would otherwise steer what the rest of the model trains on (the asked-span head picks the
    key frames, the count head fills a slot) at random. `loss_of(media, batch)` is the head's loss (None: the batch
    has nothing for it). Returns the loss per step."""
    from modeling_llamo.modeling_llamo import CLIP_INPUT_NAMES

    model = peft_model.get_base_model()
    inner = model.model
    head = getattr(inner.cross_talker, head_name)
    was_trainable = {name: p.requires_grad for name, p in peft_model.named_parameters()}
    peft_model.requires_grad_(False)
    head.requires_grad_(True)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    log, bar = [], tqdm(total=steps, desc=head_name.replace("_", " "))
    try:
        while len(log) < steps:
            for batch in loader:
                for group in optimizer.param_groups:
                    group["lr"] = lr * lr_at(len(log), steps, min(20, steps // 10))
                input_ids = batch["input_ids"]
                media = inner.prompt_media_features(
                    inner.get_input_embeddings()(input_ids), inner.get_placeholder_mask(input_ids, None),
                    batch["attention_mask"], batch.get("guidance_mask"),
                    **{name: batch[name] for name in CLIP_INPUT_NAMES if batch.get(name) is not None})
                loss = loss_of(media, batch)
                if loss is None:
                    continue
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                log.append(loss.item())
                bar.update(1)
                if len(log) % 20 == 0:
                    bar.set_postfix(loss=f"{np.mean(log[-20:]):.3f}")
                if len(log) >= steps:
                    break
    finally:
        bar.close()
        for name, p in peft_model.named_parameters():
            p.requires_grad_(was_trainable[name])
    return log


def _save_factory(args, previous, overrides, peft_model, processor, log, start, mirror=None, term_logs=None):
    def save(step):
        minutes = (time.time() - start) / 60
        build_seed = previous.get("build_seed", 0) if previous else args.seed
        recipe = {
            "build": demo.DEMO_BUILD, "build_seed": build_seed, "lora": demo.LORA,
            "frame_selection": overrides["frame_selection"], "config_overrides": overrides, "modality": args.modality,
            "count_answers": args.count_answers, "repeat": parse_overrides(args.repeat) or None,
            "mirror": ({"probability": args.mirror, "mirrored": mirror.mirrored, "eligible": mirror.seen}
                       if mirror else None),
            "steps": step, "planned_steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "lora_lr": args.lora_lr,
            "warmup": args.warmup, "seed": args.seed, "suite": suite_identity(args.data),
            "train_minutes": round(minutes, 1), "final_loss_mean_last_50": float(np.mean(log[-50:])) if log else None,
            "loss_curve_every_20": [round(float(np.mean(log[i:i + 20])), 4) for i in range(0, len(log), 20)],
        }
        for name, values in (term_logs or {}).items():  # auxiliary terms alone (the loss above includes them)
            if values:
                recipe[f"{name}_loss_curve_every_20"] = [round(float(np.mean(values[i:i + 20])), 4)
                                                         for i in range(0, len(values), 20)]
        if previous:  # a continuation: keep the history of the runs before it
            recipe["continued_from"] = {k: v for k, v in previous.items() if k not in ("motion_mean", "motion_std")}
            recipe["total_steps"] = previous.get("total_steps", previous["steps"]) + step
        demo.save_demo_weights(peft_model, processor, recipe, directory=args.output)
        size = os.path.getsize(os.path.join(args.output, "llamo-demo.safetensors")) / 2**20
        loss = "no joint step" if not log else f"loss {recipe['final_loss_mean_last_50']:.3f}"
        tqdm.write(f"step {step}: {loss}, saved to {args.output} ({size:.1f} MiB)")

    return save


if __name__ == "__main__":
    main()
