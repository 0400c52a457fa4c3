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

# One seed of every model on ml-100k, two fits side by side with one torch thread each.  The neural fits are
# capped by epochs (with early stopping), never by seconds, and one thread per fit keeps every sum in the same
# order, so the figures are the same on any machine however busy it is.
DEMO_EPOCHS ?= --set sasrec.epochs=60 --set fusion.epochs=40
demo: env
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/recfuse benchmark --dataset ml-100k --models pop,itemknn,als,bpr,sasrec,fusion \
	  --seeds 1 $(DEMO_EPOCHS) --jobs 2 --threads 1 --out results/demo --save-models models/demo
	$(VENV)/bin/recfuse explain --model models/demo/fusion --user 196 --text

test: env
	$(PY) -m pytest -q src tests

# Every quoted figure, one benchmarks/*/run.sh after another (hours: see benchmarks/README.md).
bench: env
	for script in benchmarks/*/run.sh; do echo "== $$script"; bash $$script || exit 1; done

# The headline table of README.md and docs/benchmarks.md, from the committed benchmarks/*/results.json.
.PHONY: results-table
results-table: env
	$(VENV)/bin/recfuse report

lint: env
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) results .pytest_cache

# The service on the ml-100k fusion model: trains it once into models/ (SERVE_EPOCHS epochs, early stopping),
# then serves on 127.0.0.1:8000 with an SQLite store next to it.  Curl calls: README, "Serving".
SERVE_MODEL  ?= models/ml-100k-fusion
SERVE_EPOCHS ?= 20
.PHONY: serve-demo
serve-demo: env
	test -f $(SERVE_MODEL)/bundle.json || $(VENV)/bin/recfuse train --dataset ml-100k --out $(SERVE_MODEL) --set epochs=$(SERVE_EPOCHS)
	RECFUSE_ADMIN_KEY=$${RECFUSE_ADMIN_KEY:-demo-admin-key} $(VENV)/bin/recfuse serve --model $(SERVE_MODEL) --db sqlite:///models/recfuse-demo.db --port 8000

# The docs site (mkdocs Material + mkdocstrings over src/recfuse) into site/; --strict: a broken link,
# reference or docstring cross-reference fails the build.  The configuration reference and the API pages
# are generated from the code at build time (docs/_hooks/generate.py).
.PHONY: docs
docs: env
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
