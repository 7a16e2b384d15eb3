"""Benchmark metrics: exact-match accuracy (BABEL-QA), repetition counting (Mo-RepCount), judge averages.

Conventions (the same in every report):

* **Unparseable predictions count as wrong.** A BABEL-QA answer from which no concept of the question's
  vocabulary can be extracted (`None`) never equals the gold answer. A count that cannot be read is not an
  exact count (OBZ) nor within one (OBO); for MAE and RMSE it is scored as a prediction of 0 (relative error
  1.0), the error of a model that says nothing. Reports also give `num_unparsed` and, for counting, MAE/RMSE
  over the parsed predictions only (`mae_parsed`, `rmse_parsed`), so that the two effects can be told apart.
* **MAE is relative**, as in the repetition-counting literature (RepNet, TransRAC, ESCounts):
  mean over items of |pred - gt| / gt. An item with gt = 0 uses |pred - gt| (denominator 1).
* **RMSE** is over raw counts: sqrt(mean((pred - gt)^2)).
* Accuracies and rates are fractions in [0, 1]; the markdown report prints them as given.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

__all__ = [
    "accuracy",
    "babel_qa_metrics",
    "counting_metrics",
    "grouped_accuracy",
    "judge_metrics",
    "paired_accuracy_difference",
]


def accuracy(correct: Iterable[bool]) -> float:
    values = [bool(c) for c in correct]
    return sum(values) / len(values) if values else float("nan")


def paired_accuracy_difference(reference: dict[str, bool], other: dict[str, bool]) -> dict:
    """Accuracy of `reference` minus that of `other` on the items both answered (id -> correct), with the paired
    standard error: two models scored on the same questions differ only where exactly one is right, so the
    difference is (only_reference - only_other) / n, and its error comes from those discordant items alone
    (much smaller than two independent accuracies' errors). Fractions, not points."""
    ids = sorted(reference.keys() & other.keys())
    n = len(ids)
    only_reference = sum(1 for i in ids if reference[i] and not other[i])
    only_other = sum(1 for i in ids if other[i] and not reference[i])
    if n == 0:
        return {"n": 0, "only_reference": 0, "only_other": 0, "difference": float("nan"), "standard_error": float("nan")}
    difference = (only_reference - only_other) / n
    # per-item differences d_i in {-1, 0, 1}: variance = (discordant - n * mean^2) / n, standard error = sqrt(var / n)
    variance = (only_reference + only_other) / n - difference**2
    return {"n": n, "only_reference": only_reference, "only_other": only_other, "difference": difference,
            "standard_error": math.sqrt(max(variance, 0.0) / n)}


_GROUP_ORDER = (
    "action",
    "body_part",
    "direction",
    "none",
    "before",
    "after",
    "in_between",
)


def _order(group: str):
    parts = group.split("/")
    return tuple((_GROUP_ORDER.index(p), p) if p in _GROUP_ORDER else (len(_GROUP_ORDER), p) for p in parts)


def grouped_accuracy(correct: Sequence[bool], groups: Sequence[str]) -> dict[str, dict]:
    """{group: {"accuracy", "correct", "total"}}; BABEL-QA names in the paper's order (action, body part,
    direction; none, before, after, in between), other names alphabetically after them."""
    totals, hits = defaultdict(int), defaultdict(int)
    for ok, group in zip(correct, groups):
        totals[group] += 1
        hits[group] += int(bool(ok))
    return {
        g: {"accuracy": hits[g] / totals[g], "correct": hits[g], "total": totals[g]} for g in sorted(totals, key=_order)
    }


def babel_qa_metrics(
    predictions: Sequence[str | None],
    answers: Sequence[str],
    query_types: Sequence[str],
    relation_types: Sequence[str],
) -> dict:
    """Exact-match accuracy overall, per query type, per relation and per (query type, relation).

    `predictions` are extracted canonical concepts (None = unparseable, counted wrong).
    """
    if not (len(predictions) == len(answers) == len(query_types) == len(relation_types)):
        raise ValueError("predictions, answers, query_types and relation_types must have the same length.")
    correct = [p is not None and p == a for p, a in zip(predictions, answers)]
    return {
        "accuracy": accuracy(correct),
        "correct": sum(correct),
        "total": len(correct),
        "num_unparsed": sum(p is None for p in predictions),
        "by_query_type": grouped_accuracy(correct, query_types),
        "by_relation": grouped_accuracy(correct, relation_types),
        "by_query_type_and_relation": grouped_accuracy(
            correct, [f"{q}/{r}" for q, r in zip(query_types, relation_types)]
        ),
    }


def counting_metrics(predictions: Sequence[int | None], targets: Sequence[int]) -> dict:
    """OBZ, OBO, relative MAE and RMSE (see the module docstring for unparseable predictions and gt = 0)."""
    if len(predictions) != len(targets):
        raise ValueError("predictions and targets must have the same length.")
    n = len(targets)
    if n == 0:
        nan = float("nan")
        return {
            "obz": nan,
            "obo": nan,
            "mae": nan,
            "rmse": nan,
            "total": 0,
            "num_unparsed": 0,
        }
    obz = obo = 0
    rel_errors, sq_errors, rel_parsed, sq_parsed = [], [], [], []
    for pred, gt in zip(predictions, targets):
        gt = float(gt)
        if pred is not None:
            diff = abs(float(pred) - gt)
            obz += diff == 0
            obo += diff <= 1
            rel_parsed.append(diff / (gt if gt != 0 else 1.0))
            sq_parsed.append(diff**2)
        else:
            diff = abs(gt)  # scored as a prediction of 0
        rel_errors.append(diff / (gt if gt != 0 else 1.0))
        sq_errors.append(diff**2)
    return {
        "obz": obz / n,
        "obo": obo / n,
        "mae": sum(rel_errors) / n,
        "rmse": math.sqrt(sum(sq_errors) / n),
        "mae_parsed": sum(rel_parsed) / len(rel_parsed) if rel_parsed else float("nan"),
        "rmse_parsed": math.sqrt(sum(sq_parsed) / len(sq_parsed)) if sq_parsed else float("nan"),
        "total": n,
        "num_unparsed": sum(p is None for p in predictions),
    }


def judge_metrics(
    correct: Sequence[bool],
    scores: Sequence[float],
    categories: Sequence[str] | None = None,
    parsed: Sequence[bool] | None = None,
) -> dict:
    """Judge accuracy (share judged correct) and mean 0-5 score, overall and per category.

    A judge reply that could not be parsed counts as incorrect with score 0 (`num_unparsed` says how many).
    """
    n = len(correct)
    out = {
        "accuracy": accuracy(correct),
        "score": sum(scores) / n if n else float("nan"),
        "total": n,
        "num_unparsed": 0 if parsed is None else sum(not p for p in parsed),
    }
    if categories is not None:
        groups = defaultdict(list)
        for ok, score, cat in zip(correct, scores, categories):
            groups[cat].append((ok, score))
        out["by_category"] = {
            cat: {
                "accuracy": sum(ok for ok, _ in rows) / len(rows),
                "score": sum(s for _, s in rows) / len(rows),
                "total": len(rows),
            }
            for cat, rows in groups.items()
        }
    return out
