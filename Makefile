# recfuse: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# CPU build by default; a GPU user installs another torch into .venv first and this step keeps it.
TORCH  ?= torch==2.13.0

.PHONY: env demo test bench lint clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH)
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $@

demo: env
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/recfuse benchmark --dataset ml-100k --models pop,itemknn,als,bpr,gru4rec,sasrec --seeds 2 --out results/demo

test: env
	$(PY) -m pytest -q src tests

bench: env
	bash benchmarks/run_all.sh

lint: env
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) results .pytest_cache
