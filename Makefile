# The two Quick-start commands of the README are `make demo` and `make test`.
# Both create the virtual environment on first use (CPU torch from the local wheel first, so that pip
# never resolves torch to a multi-GB CUDA build), then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.daflow-installed
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo_out

.PHONY: demo test test-slow check-bundle install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/daflow demo -o $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

# the scores the bundled models' PROVENANCE.json recorded meet their bars (run after re-bundling)
check-bundle: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m bundle

clean:
	rm -rf $(VENV) $(DEMO_OUT) build src/*.egg-info
