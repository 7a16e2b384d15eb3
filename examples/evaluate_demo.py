"""Quality of a llamo checkpoint on the motion-QA suite: the table of the README.

    python examples/evaluate_demo.py                       # llamo-demo, test + heldout splits, motion only
    python examples/evaluate_demo.py --model CKPT --splits test --limit 200 --output outputs/eval-x
    python examples/evaluate_demo.py --modality video  # the suite rendered with videos (generated if missing)
    python examples/evaluate_demo.py --model NEW --against outputs/demo-eval --output outputs/eval-new  # paired

Exact-match accuracy per query type and relation (BABEL-QA protocol, the suite's extra actions added to the
closed vocabulary) and counting OBZ / OBO / MAE / RMSE (Mo-RepCount protocol), through the evaluation harness
(`llamo.evaluation`): batched, cached per item (an interrupted run resumes) with report.json / report.md / plots
per split and task. Items are a seeded sample of each split, the same for every model (`llamo.evaluation.suite`).
summary.md also says how often each count was answered against how often it was true, and how many wrong body
parts name the right limb on the wrong side; `--against` pairs choice accuracy and counting OBO question by question;
`--key-frames` adds where the question's key frames fall (on the segment it asks about or the one it names);
`--count-probe` how well a linear read-out finds the repetition count in the key frames against in the frames of
the asked segment, of that segment with its ends a little off and of the stretch the question's scores cover, and
how well those scores find the counted segment (where the count is lost). A model with the count head
(`use_count_head`) also gets that head's own reading of the counts.
"""

import argparse
import os

from llamo import demo
from llamo.evaluation.harness import LlamoPredictor
from llamo.evaluation.suite import (
    MODALITIES,
    PAIRED_MEASURES,
    count_head_readings,
    count_probe,
    error_breakdown,
    evaluate_split,
    key_frame_placement,
    paired_table,
    table_header,
    table_row,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint folder (default: llamo-demo)")
    parser.add_argument("--data", help="motion-QA suite folder (default: the demo's, generated if missing; with "
                        "videos for --modality video/both)")
    parser.add_argument("--splits", nargs="+", default=["test", "heldout"])
    parser.add_argument("--modality", default="motion", choices=MODALITIES,
                        help="what each question comes with (video needs a suite rendered with videos)")
    parser.add_argument("--limit", type=int, default=300, help="choice questions per split (counting: a third)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/demo-eval")
    parser.add_argument("--against", help="an earlier run's --output folder (another checkpoint or input): also "
                        "write this model's choice accuracy (overall and per query type) and counting OBO minus "
                        "that one's on the questions both answered, with the paired standard error")
    parser.add_argument("--key-frames", action="store_true", help="also write where the question's key frames "
                        "fall: on the segment it asks about, on the one it names (one more forward pass per batch)")
    parser.add_argument("--count-probe", action="store_true", help="also fit linear read-outs of the count to the "
                        "key frames, the asked segment's frames (exact and with its ends off), the scored stretch's "
                        "and the clip's, and say how well the scores find the counted segment (train split; a "
                        "forward pass per question of train, val and each split)")
    args = parser.parse_args(argv)
    for split in args.splits if args.against else []:  # before the evaluation, not after it
        for task in ("babel_qa", "counting"):
            if not os.path.exists(os.path.join(args.against, split, task, "scored_items.jsonl")):
                raise SystemExit(f"--against {args.against}: no {split!r} evaluation there (expected an earlier "
                                 f"run's --output folder with {split}/{task}/scored_items.jsonl)")

    if args.data is None:
        args.data = demo.ensure_suite(demo.suite_for(args.modality), render_videos=args.modality != "motion")
    model_path = args.model or demo.materialize_demo()
    predictor = LlamoPredictor.from_pretrained(model_path, max_new_tokens=8, batch_size=args.batch_size)
    rows = []
    for split in args.splits:
        result = evaluate_split(predictor, args.data, split, os.path.join(args.output, split), limit=args.limit,
                                seed=args.seed, modality=args.modality, batch_size=args.batch_size)
        rows.append(table_row(split, result))
        print("\n".join([table_header()] + rows), flush=True)
    table = "\n".join([table_header()] + rows)
    for split in args.splits if args.against else []:
        for measure in PAIRED_MEASURES:
            table += f"\n\n{split}, {measure}, against {args.against}:\n" + paired_table(
                "that run", os.path.join(args.against, split), {"this model": os.path.join(args.output, split)},
                measure=measure)
    for split in args.splits:
        table += f"\n\n{split}, counts said and true, and the body-part errors:\n\n" + error_breakdown(
            os.path.join(args.output, split), args.data)
    if getattr(predictor.model.config, "use_count_head", False):
        table += ("\n\nThe count head's own reading (rounded), what the last placeholder slot hands the language "
                  "model:\n\n| split | count OBZ | OBO | MAE | RMSE (n) |\n|---|---|---|---|---|")
        for split in args.splits:
            head = count_head_readings(predictor, args.data, split, limit=args.limit, seed=args.seed,
                                       modality=args.modality)
            table += (f"\n| {split} | {head['obz']:.3f} | {head['obo']:.3f} | {head['mae']:.3f} | "
                      f"{head['rmse']:.2f} ({head['total']}) |")
    for split in args.splits if args.key_frames else []:
        table += f"\n\n{split}, where the key frames fall:\n\n" + key_frame_placement(
            predictor, args.data, split, limit=args.limit, seed=args.seed, modality=args.modality)
    if args.count_probe:
        table += "\n\nWhere the count is lost:\n\n" + count_probe(
            predictor, args.data, args.splits, limit=args.limit, seed=args.seed, modality=args.modality)
    with open(os.path.join(args.output, "summary.md"), "w") as f:
        f.write(f"Model: {model_path}\nInput: {args.modality}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
