"""Evaluation harness for the paper's benchmark protocols (BABEL-QA, repetition counting, judge-scored QA).

Python API::

    from llamo.evaluation import LlamoPredictor, load_babel_qa, run_evaluation
    items = load_babel_qa("BABEL-QA/", split="test")
    report = run_evaluation("babel_qa", items, LlamoPredictor.from_pretrained("ckpt"), "runs/babel")

Command line: `llamo eval ...` (`llamo.evaluation.cli.main`).
"""

from .answers import (
    ACTION_VOCAB,
    ACTIONS,
    BABEL_QA_VOCABULARIES,
    BODY_PART_VOCAB,
    BODY_PARTS,
    DIRECTION_VOCAB,
    DIRECTIONS,
    Vocabulary,
    extract_choice,
    extract_count,
    vocabulary_for_query_type,
)
from .harness import (
    BabelQATask,
    CountingTask,
    EvalItem,
    LlamoPredictor,
    OpenQATask,
    Predictor,
    Task,
    load_babel_qa,
    load_counting,
    load_open_qa,
    make_task,
    run_evaluation,
)
from .judge import HTTPJudge, Judge, JudgeResult, LocalJudge, parse_judgement
from .metrics import babel_qa_metrics, counting_metrics, judge_metrics

__all__ = [
    "ACTIONS",
    "ACTION_VOCAB",
    "BABEL_QA_VOCABULARIES",
    "BODY_PARTS",
    "BODY_PART_VOCAB",
    "DIRECTIONS",
    "DIRECTION_VOCAB",
    "BabelQATask",
    "CountingTask",
    "EvalItem",
    "HTTPJudge",
    "Judge",
    "JudgeResult",
    "LlamoPredictor",
    "LocalJudge",
    "OpenQATask",
    "Predictor",
    "Task",
    "Vocabulary",
    "babel_qa_metrics",
    "counting_metrics",
    "extract_choice",
    "extract_count",
    "judge_metrics",
    "load_babel_qa",
    "load_counting",
    "load_open_qa",
    "make_task",
    "parse_judgement",
    "run_evaluation",
    "vocabulary_for_query_type",
]
