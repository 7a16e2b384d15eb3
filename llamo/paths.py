"""Where llamo keeps what it builds on first use (converted SmolLM2, materialised demo, generated suite).

`LLAMO_CACHE` overrides the default `~/.cache/llamo`; it is read at import time, so set it before importing llamo
(the test suite points it at a per-session temporary folder in `tests/conftest.py`).
"""

import os

CACHE_ROOT = os.path.expanduser(os.environ.get("LLAMO_CACHE", "~/.cache/llamo"))
