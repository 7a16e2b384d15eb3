"""Quality of a llamo checkpoint on the motion-QA suite: the table of the README.

    python examples/evaluate_demo.py                       # llamo-demo, test + heldout splits, motion only
    python examples/evaluate_demo.py --model CKPT --splits test --limit 200 --output outputs/eval-x

Exact-match accuracy per query type and relation (BABEL-QA protocol, the suite's extra actions added to the
closed vocabulary) and counting OBZ / OBO / MAE / RMSE (Mo-RepCount protocol), through the evaluation harness
(`llamo.evaluation`): batched, cached per item (an interrupted run resumes) with report.json / report.md / plots
per split and task. Items are a seeded sample of each split, the same for every model.
"""

import argparse
import json
import os
import random

from llamo import demo
from llamo.evaluation.harness import BabelQATask, CountingTask, LlamoPredictor, load_babel_qa, run_evaluation

CHOICE_TYPES = ("action", "direction", "body_part")


def sample_items(data, split, limit, seed):
    items = load_babel_qa(data, split, prompt_suffix="")  # the demo was trained on the bare questions
    random.Random(seed).shuffle(items)
    choice = [item for item in items if item.meta["query_type"] in CHOICE_TYPES][:limit]
    counting = [item for item in items if item.meta["query_type"] == "count"][: max(1, limit // 3)]
    for item in counting:
        item.answer = int(item.answer)
    return choice, counting


def summary_row(split, qa, counts):
    by_type, by_relation = qa["by_query_type"], qa["by_relation"]

    def acc(group, key):
        return f"{group[key]['accuracy']:.3f}" if key in group else "-"

    return (f"| {split} | {qa['accuracy']:.3f} ({qa['total']}) | {acc(by_type, 'action')} | {acc(by_type, 'direction')} | "
            f"{acc(by_type, 'body_part')} | {acc(by_relation, 'none')} | {acc(by_relation, 'before')} | "
            f"{acc(by_relation, 'after')} | {acc(by_relation, 'in_between')} | {counts['obz']:.3f} | {counts['obo']:.3f} | "
            f"{counts['mae']:.3f} | {counts['rmse']:.2f} ({counts['total']}) |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint folder (default: llamo-demo)")
    parser.add_argument("--data", default=demo.DEMO_SUITE)
    parser.add_argument("--splits", nargs="+", default=["test", "heldout"])
    parser.add_argument("--limit", type=int, default=300, help="choice questions per split (counting: a third)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/demo-eval")
    args = parser.parse_args(argv)

    model_path = args.model or demo.materialize_demo()
    predictor = LlamoPredictor.from_pretrained(model_path, max_new_tokens=8, batch_size=args.batch_size)
    with open(os.path.join(args.data, "metadata.json")) as f:
        suite_actions = json.load(f)["actions"]
    task = BabelQATask(extra_concepts={"action": suite_actions})

    header = ("| split | choice acc (n) | action | direction | body part | none | before | after | in between | "
              "count OBZ | OBO | MAE | RMSE (n) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for split in args.splits:
        choice, counting = sample_items(args.data, split, args.limit, args.seed)
        out = os.path.join(args.output, split)
        qa = run_evaluation(task, choice, predictor, os.path.join(out, "babel_qa"), batch_size=args.batch_size,
                            plot_item="first")["metrics"]
        counts = run_evaluation(CountingTask(), counting, predictor, os.path.join(out, "counting"),
                                batch_size=args.batch_size)["metrics"]
        rows.append(summary_row(split, qa, counts))
        print("\n".join([header] + rows), flush=True)
    table = "\n".join([header] + rows)
    with open(os.path.join(args.output, "summary.md"), "w") as f:
        f.write(f"Model: {model_path}\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
