#!/usr/bin/env bash
# A tuning sweep like the tables: every point of a grid at every seed, then the report's pick (the
# point with the lowest median validation error over the seeds) beside its test error.
#   scripts/tune.sh --preset vat+pl                                  # the VAT + PL grid (docs)
#   scripts/tune.sh --method=vat+pl --dataset=cifar10 --grid pl_weight=0.3,1,3 --grid pl_threshold=0.9,0.95
# Options and variables (RESULTS, PROTOCOL, SCALE, GPUS, SEEDS, DATA_DIR, --dry-run):
# docs/reproducing.md.
set -euo pipefail
# Paths (--results, --data_dir) are relative to where you call it; the code is found from here.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m scripts.sweep tune "$@"
