"""Fine-tuning LLaMo on `transformers.Trainer`: the paper's stages, peft LoRA, generation-based evaluation.

See `examples/finetune.py` for the command line and `llamo.data.conversations` for the data format.
"""
