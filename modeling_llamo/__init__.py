"""LLaMo model for transformers. Importing this package registers `llamo` with the Auto classes.

`AutoConfig`, `AutoModel` (the backbone, no LM head) and `AutoModelForImageTextToText` (generates) resolve a
`llamo` checkpoint without `trust_remote_code`. Saving also writes the module files and `auto_map`, so a folder
loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

from .configuration_llamo import LlamoConfig
from .modeling_llamo import LlamoForConditionalGeneration, LlamoModel, LlamoPreTrainedModel

AutoConfig.register(LlamoConfig.model_type, LlamoConfig, exist_ok=True)
AutoModel.register(LlamoConfig, LlamoModel, exist_ok=True)
AutoModelForImageTextToText.register(LlamoConfig, LlamoForConditionalGeneration, exist_ok=True)

# Remote code: `save_pretrained` copies these modules and records them in `auto_map`.
LlamoConfig.register_for_auto_class()
LlamoModel.register_for_auto_class("AutoModel")
LlamoForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")

try:  # the processor registers itself too, so `import modeling_llamo` is enough for every Auto class
    import processing_llamo  # noqa: F401
except ImportError:  # pragma: no cover - processing extras (av) missing
    pass

__all__ = ["LlamoConfig", "LlamoModel", "LlamoForConditionalGeneration", "LlamoPreTrainedModel"]
