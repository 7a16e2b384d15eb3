"""What each part of LLaMo buys, measured on the motion-QA suite: the ablation table of the README.

    python examples/ablate_demo.py                               # llamo-demo, switches flipped at evaluation
    python examples/ablate_demo.py --model CKPT --variants full uniform k4 --limit 100
    python examples/ablate_demo.py --retrain --steps 1200        # each variant trained from scratch (hours on CPU)

Variants (`VARIANTS`): the full model (text-guided selection of its K key frames, Motion Feature Enhancer on,
motion input), uniform key frames instead of text-guided ones, half of them evenly spaced and half text-guided
(`num_coverage_frames`) or none evenly spaced (the paper's plain top-K), the question's picks at the top scores
or at quantiles of the score mass (`key_frame_rule`), the enhancer off, K in {4, 8, 16, 32}, video
only / video + motion, and (`--retrain` only) text-guided selection trained with Gumbel exploration.

Two ways to measure, and they answer different questions:
- *evaluation-time* (default): one trained checkpoint, each variant's switch flipped when the model is loaded.
  It says what the trained model relies on (e.g. how much worse it does when its question-picked frames are
  replaced by evenly spaced ones, or with fewer/more of them). Cheap: minutes.
- `--retrain`: every variant trained from scratch with `examples/train_demo.py`'s recipe (same seed, data and
  steps), then evaluated. That is the paper's ablation: what training with or without the part reaches.

Every number comes from `llamo.evaluation.suite` (the same seeded items as `examples/evaluate_demo.py`); each
variant's predictions are cached under `--output`, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field

from modeling_llamo import LlamoConfig

from llamo import demo, inference
from llamo.data.motion_qa import suite_has_videos
from llamo.evaluation.harness import LlamoPredictor
from llamo.evaluation.suite import PAIRED_MEASURES, evaluate_split, paired_table, table_header, table_row


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: `LlamoConfig` overrides and the input the questions come with."""

    name: str
    description: str
    config: dict = field(default_factory=dict)  # LlamoConfig keys, plus `coverage_share` (see `config_overrides`)
    modality: str = "motion"
    retrain_only: bool = False  # the switch acts during training only: flipped on a trained model it changes nothing


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("full", "the checkpoint as trained (its key-frame selection and K, enhancer on), motion"),
        Variant("uniform", "uniform key frames instead of text-guided (E5-E6 off)", {"frame_selection": "uniform"}),
        Variant("coverage", "half the key frames evenly spaced, half text-guided", {"coverage_share": 0.5}),
        Variant("top_k", "the paper's plain top-K (no evenly spaced key frames, all at the top scores)",
                {"coverage_share": 0.0, "key_frame_rule": "top_k"}),
        Variant("quantiles", "question-picked key frames at quantiles of the score mass (ours) instead of the "
                "top scores", {"key_frame_rule": "score_quantiles"}),
        Variant("top_scores", "question-picked key frames at the top scores (the paper's E6) instead of the score "
                "quantiles", {"key_frame_rule": "top_k"}),
        Variant("no_enhancer", "Motion Feature Enhancer off (E3-E4)", {"use_enhancer": False}),
        Variant("k4", "K = 4 key frames", {"num_key_frames": 4}),
        Variant("k8", "K = 8 key frames", {"num_key_frames": 8}),
        Variant("k16", "K = 16 key frames", {"num_key_frames": 16}),
        Variant("k32", "K = 32 key frames", {"num_key_frames": 32}),
        Variant("video", "video only", modality="video"),
        Variant("both", "video + motion", modality="both"),
        Variant("explore", "text-guided key frames, Gumbel exploration while training (tau = 1)",
                {"key_frame_exploration": 1.0}, retrain_only=True),
    )
}


def config_overrides(variant: Variant, trained: LlamoConfig) -> dict:
    """The variant's `LlamoConfig` overrides for a model of config `trained`. Its `coverage_share` (the share of
    the K key frames that are evenly spaced, `num_coverage_frames / num_key_frames`; by default the trained
    model's own) becomes `num_coverage_frames` at the variant's K, so e.g. `k4` keeps a model's share of
    coverage frames. A switch already at the trained value is left out (the row is the checkpoint as trained there)."""
    overrides = {key: value for key, value in variant.config.items()
                 if key == "coverage_share" or getattr(trained, key, None) != value}
    num_key_frames = overrides.get("num_key_frames", trained.num_key_frames)
    share = overrides.pop("coverage_share", trained.num_coverage_frames / trained.num_key_frames)
    coverage = round(share * num_key_frames)
    if coverage != trained.num_coverage_frames:
        overrides["num_coverage_frames"] = coverage
    return overrides


def load_variant(checkpoint: str, variant: Variant, batch_size: int) -> LlamoPredictor:
    """The checkpoint with the variant's switches flipped (evaluation-time ablation; weights of a module a variant
    switches off are left unused)."""
    overrides = config_overrides(variant, LlamoConfig.from_pretrained(checkpoint))
    model, processor = inference.load(checkpoint, **overrides)
    return LlamoPredictor(model, processor, max_new_tokens=8, batch_size=batch_size, name=f"{checkpoint}:{variant.name}")


def retrain_overrides(variant: Variant) -> dict:
    """The variant's `LlamoConfig` overrides of the demo recipe (`train_demo.py --config`)."""
    return config_overrides(variant, LlamoConfig(num_key_frames=demo.DEMO_BUILD["num_key_frames"]))


def same_as_full(names, overrides_of) -> list[str]:
    """The variants among `names`, other than `full`, that would rerun the full row: motion input, and no switch
    that differs from the model's (`overrides_of(variant)` empty), e.g. `k16` on a checkpoint trained with K = 16."""
    return [name for name in names if name != "full" and VARIANTS[name].modality == "motion"
            and not overrides_of(VARIANTS[name])]


def check_trained_variant(recipe_path: str, variant: Variant, steps: int, seed: int) -> None:
    """Weights already in a variant's folder are reused only when they are this variant's finished run: a run
    stopped midway (`--save-every` leaves a recipe behind) or one with other settings would give the row numbers
    that belong to another model."""
    with open(recipe_path) as f:
        recipe = json.load(f)
    folder = os.path.dirname(recipe_path)
    if recipe.get("steps") != recipe.get("planned_steps", recipe.get("steps")):
        raise SystemExit(f"{folder} holds an unfinished run ({recipe.get('steps')} of {recipe.get('planned_steps')} "
                         "steps): delete it to train the variant again")
    overrides = dict(recipe.get("config_overrides", {}))
    if overrides.get("frame_selection") == "text_guided":  # train_demo records its default; variants omit it
        del overrides["frame_selection"]
    found = {"steps": recipe.get("steps"), "seed": recipe.get("seed"), "modality": recipe.get("modality", "motion"),
             "config": overrides}
    wanted = {"steps": steps, "seed": seed, "modality": variant.modality, "config": retrain_overrides(variant)}
    if found != wanted:
        different = ", ".join(f"{k}={found[k]!r} (asked: {wanted[k]!r})" for k in wanted if found[k] != wanted[k])
        raise SystemExit(f"{folder} holds another run of {variant.name!r}: {different}; use another --output or "
                         "delete it")


def train_variant(variant: Variant, output: str, steps: int, seed: int, data: str) -> str:
    """Train the variant from scratch with the demo recipe; returns its materialised checkpoint folder."""
    import train_demo  # examples/ is on sys.path when this script runs

    weights_dir = os.path.join(output, "weights")
    recipe_path = os.path.join(weights_dir, "recipe.json")
    if os.path.exists(recipe_path):
        check_trained_variant(recipe_path, variant, steps, seed)
    else:
        argv = ["--steps", str(steps), "--seed", str(seed), "--data", data, "--output", weights_dir,
                "--modality", variant.modality]
        for key, value in retrain_overrides(variant).items():
            argv += ["--config", f"{key}={json.dumps(value)}"]
        train_demo.main(argv)
    return demo.materialize_demo(cache_dir=os.path.join(output, "checkpoint"),
                                 weights=os.path.join(weights_dir, "llamo-demo.safetensors"),
                                 recipe_path=os.path.join(weights_dir, "recipe.json"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint for the evaluation-time ablation (default: llamo-demo)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all that the data allows")
    parser.add_argument("--retrain", action="store_true", help="train every variant from scratch (see above)")
    parser.add_argument("--steps", type=int, default=1200, help="--retrain: training steps per variant")
    parser.add_argument("--data", help="motion-QA suite folder (default: the demo's; the one rendered with videos when "
                        "a video row is asked for or that one exists)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=300, help="choice questions (counting: a third)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/ablation")
    args = parser.parse_args(argv)

    names = args.variants or [name for name, v in VARIANTS.items() if args.retrain or not v.retrain_only]
    if not args.retrain and any(VARIANTS[name].retrain_only for name in names):
        raise SystemExit(f"{', '.join(n for n in names if VARIANTS[n].retrain_only)}: a training-time switch, "
                         "measured only with --retrain (on a trained checkpoint it would equal the full row)")
    if args.data is None:  # the two demo suites hold the same questions; only one has the videos
        wants_video = any(VARIANTS[name].modality != "motion" for name in args.variants or [])
        with_video = wants_video or os.path.exists(os.path.join(demo.DEMO_VIDEO_SUITE, "questions.json"))
        args.data = demo.ensure_suite(demo.suite_for("both" if with_video else "motion"), render_videos=with_video)
    if not args.variants and not args.retrain:
        # Video rows need a suite rendered with videos and a checkpoint trained on them; by default they are run
        # only when the suite has videos.
        has_video = suite_has_videos(args.data)
        skipped = [name for name in names if VARIANTS[name].modality != "motion" and not has_video]
        if skipped:
            print(f"{args.data} has no rendered videos: skipping {', '.join(skipped)} (ask for them with --variants "
                  "to generate the demo suite with videos)")
        names = [name for name in names if name not in skipped]
    checkpoint = None if args.retrain else (args.model or demo.materialize_demo())
    trained = None if args.retrain else LlamoConfig.from_pretrained(checkpoint)
    repeats = same_as_full(names, retrain_overrides if args.retrain else lambda v: config_overrides(v, trained))
    if repeats:
        print(f"skipping {', '.join(repeats)}: the model already has that setting (the full row)")
        names = [name for name in names if name not in repeats]
    mode = "retrained per variant" if args.retrain else f"evaluation-time switches on {checkpoint}"
    rows, folders = [], {}
    for name in names:
        variant = VARIANTS[name]
        folder = os.path.join(args.output, name)
        if args.retrain:
            predictor = LlamoPredictor.from_pretrained(
                train_variant(variant, folder, args.steps, args.seed, args.data), max_new_tokens=8,
                batch_size=args.batch_size)
        else:
            predictor = load_variant(checkpoint, variant, args.batch_size)
        result = evaluate_split(predictor, args.data, args.split, folder, limit=args.limit, seed=args.seed,
                                modality=variant.modality, batch_size=args.batch_size, plot=False)
        folders[name] = folder
        rows.append(table_row(f"{name}: {variant.description}", result))
        print("\n".join([table_header("variant")] + rows), flush=True)
    table = "\n".join([table_header("variant")] + rows)
    if "full" in folders and len(folders) > 1:  # what switching each part off costs, on the same questions
        others = {n: f for n, f in folders.items() if n != "full"}
        table += "".join(f"\n\n{paired_table('full', folders['full'], others, measure=m)}" for m in PAIRED_MEASURES)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "ablation.md"), "w") as f:
        f.write(f"Ablation on the motion-QA suite, split {args.split!r} ({mode}).\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
