"""Tooling around the LLaMo model: the `llamo` command, the motion-QA suite, evaluation.

The model and processor live in `modeling_llamo` and `processing_llamo` (the files a checkpoint carries as
remote code); this package holds what a user runs around them.
"""
