"""Evaluation harness for the paper's benchmark protocols (BABEL-QA, repetition counting, judge-scored QA)."""
