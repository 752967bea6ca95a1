# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKDIR ?= demo_work
# pytest-xdist processes for `make test`: the suite is mostly one-threaded work and waits on
# subprocesses, so two workers fill a 2-core machine (TEST_WORKERS=0 runs it in one process).
TEST_WORKERS ?= 2

.PHONY: demo test soak lint bench clean-demo farm-tools

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned in pyproject.toml; installing it first by its exact pin makes pip take the
# CPU wheel that lies on this machine's disk instead of resolving a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/likeness demo --workdir $(WORKDIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

soak: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Optional Debian packages for the tests that drive real farm tools: a one-node Slurm cluster
# (slurm-wlm) and headless chromium on the luigid visualiser. Without them those tests skip.
farm-tools:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm chromium \
	  || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm chromium)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean-demo:
	rm -rf $(WORKDIR)
