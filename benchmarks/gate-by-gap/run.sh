#!/usr/bin/env bash
# The gate-by-gap plot of the docs' fusion page, from the model `make demo` saves (models/demo/fusion).
set -euo pipefail
cd "$(dirname "$0")/../.."
test -f models/demo/fusion/bundle.json || make demo
.venv/bin/python benchmarks/gate-by-gap/plot.py models/demo/fusion docs/img/gate_by_gap.png
