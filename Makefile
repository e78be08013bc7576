# ConvServe. `make serve` and `make test` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MODELS ?= models
FUZZ_EXAMPLES ?= 500

.PHONY: serve test models eval report lint bench profile fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Serving needs no torch. ONNX Runtime: the CUDA build (+ CUDA/cuDNN wheels) where an NVIDIA driver is
# found, else the small CPU build; `make serve ORT=cpu|gpu` chooses.
ORT ?= $(shell ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && echo gpu || echo cpu)
$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$(ORT)]'
	touch $@

# Training + tests: [dev] pulls in [train] (torch==2.13.0, onnx, scikit-learn, ...).
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime 2>/dev/null || true  # one ONNX Runtime per venv
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.serve-installed

serve: $(VENV)/.serve-installed
	$(BIN)/python -m service --models $(MODELS) --host 127.0.0.1 --port 8000

# The browser tests drive Debian's chromium (installed here when missing and root; skipped otherwise).
test: $(VENV)/.dev-installed
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || true
	$(BIN)/ruff check convserve modelrepo service training tests bench
	$(BIN)/ruff format --check convserve modelrepo service training tests bench
	$(BIN)/python -m pytest

models: $(VENV)/.dev-installed
	$(BIN)/python -m training models --models $(MODELS) --overwrite

eval: $(VENV)/.dev-installed
	$(BIN)/python -m training eval --models $(MODELS)

# tables and plots in docs/ from the committed cards (robustness, segmentation generalisation)
report: $(VENV)/.dev-installed
	$(BIN)/python -m training report --models $(MODELS) --out docs

# Load comes from wrk (Debian's package), a separate process; installed here when missing and root.
bench: $(VENV)/.dev-installed
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/run.py

# py-spy samples ConvServe (or the plain endpoint: ARGS="--kind plain") under wrk; shares of the request path
profile: $(VENV)/.dev-installed
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python bench/profile.py $(ARGS)

# >= 10,000 generated requests against a live server and thousands of mutated files per decoder,
# random seeds; the tally lands in test-artifacts/fuzz/ (make test runs a small derandomised profile)
fuzz: $(VENV)/.dev-installed
	CONVSERVE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CONVSERVE_FUZZ_RANDOM=1 CONVSERVE_FUZZ_MIN_REQUESTS=10000 \
		$(BIN)/python -m pytest -q --timeout 3600 tests/fuzz

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check convserve modelrepo service training tests bench
	$(BIN)/ruff format --check convserve modelrepo service training tests bench

clean:
	rm -rf $(VENV) runs build .pytest_cache
