"""Weights from other formats into llamo checkpoints (build from parts, MotionLLM, LLaVA-style layouts)."""
