"""`llamo eval`: run a benchmark protocol over a LLaMo checkpoint.

    llamo eval --task babel_qa --data BABEL-QA/ --model CKPT --split test --output runs/babel_test
    llamo eval --task counting --data repcount/test.jsonl --model CKPT --output runs/count
    llamo eval --task open_qa --data movid/test.jsonl --model CKPT --output runs/movid --judge http
    llamo eval --task open_qa ... --judge local:/path/to/judge-model   (or local:DIR::file.gguf)

The HTTP judge reads `LLAMO_JUDGE_URL`, `LLAMO_JUDGE_API_KEY` and `LLAMO_JUDGE_MODEL`. A rerun with the same
`--output` resumes (cached predictions are reused) unless `--no-resume`. See `llamo.evaluation.harness` for the
files written.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["build_parser", "main"]


def build_parser(prog: str = "llamo eval") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Evaluate a LLaMo checkpoint on a benchmark protocol.")
    parser.add_argument("--task", required=True, choices=["babel_qa", "counting", "open_qa"])
    parser.add_argument(
        "--data",
        required=True,
        help="BABEL-QA folder, or a JSONL file (or folder with <split>.jsonl).",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or hub id of a LLaMo model")
    parser.add_argument(
        "--output",
        required=True,
        help="output folder (predictions cache, report, plots)",
    )
    parser.add_argument(
        "--split",
        default="test",
        help="BABEL-QA split (train/val/test/all); JSONL folder split",
    )
    parser.add_argument(
        "--split-file",
        default=None,
        help="BABEL-QA split file (default: DATA/split_question_ids.json)",
    )
    parser.add_argument(
        "--judge",
        default=None,
        help="open_qa judge: 'http' or 'local:PATH' (or local:DIR::FILE.gguf)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="ignore and overwrite cached predictions",
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--device", default=None, help="e.g. cuda, cuda:1, cpu (default: cpu)")
    parser.add_argument("--dtype", default=None, choices=[None, "float32", "bfloat16", "float16"])
    parser.add_argument("--prompt-suffix", default=None, help="BABEL-QA: text appended to each question")
    parser.add_argument(
        "--plot-item",
        default=None,
        help="item id (or 'first') to plot with its key frames",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .harness import (
        DEFAULT_BABEL_QA_SUFFIX,
        LlamoPredictor,
        load_babel_qa,
        load_counting,
        load_open_qa,
        make_task,
        run_evaluation,
    )
    from .judge import judge_from_spec

    if args.task == "babel_qa":
        suffix = DEFAULT_BABEL_QA_SUFFIX if args.prompt_suffix is None else args.prompt_suffix
        items = load_babel_qa(
            args.data,
            split=args.split,
            split_file=args.split_file,
            limit=args.limit,
            prompt_suffix=suffix,
        )
    elif args.task == "counting":
        items = load_counting(args.data, split=args.split, limit=args.limit)
    else:
        items = load_open_qa(args.data, split=args.split, limit=args.limit)
    if args.task == "open_qa" and not args.judge:
        print("error: --task open_qa needs --judge http|local:PATH", file=sys.stderr)
        return 2
    judge = judge_from_spec(args.judge) if args.task == "open_qa" else None
    task = make_task(args.task, judge=judge)

    dtype = None
    if args.dtype:
        import torch

        dtype = getattr(torch, args.dtype)
    predictor = LlamoPredictor.from_pretrained(
        args.model,
        device=args.device,
        dtype=dtype,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    report = run_evaluation(
        task,
        items,
        predictor,
        args.output,
        batch_size=args.batch_size,
        resume=not args.no_resume,
        plot_item=args.plot_item,
        progress=not args.no_progress,
    )
    print(
        json.dumps(
            {
                "task": report["task"],
                "num_items": report["num_items"],
                "metrics": _headline(report),
            },
            indent=2,
        )
    )
    print(f"report: {args.output}/report.json, {args.output}/report.md")
    return 0


def _headline(report: dict) -> dict:
    m = report["metrics"]
    keys = {
        "babel_qa": ("accuracy", "num_unparsed"),
        "counting": ("obz", "obo", "mae", "rmse", "num_unparsed"),
        "open_qa": ("accuracy", "score", "num_unparsed"),
    }[report["task"]]
    return {k: m.get(k) for k in keys}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
