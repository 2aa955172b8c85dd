#!/usr/bin/env bash
# FixMatch and FixMatch+NS3L at the FixMatch paper's Table 2 cells (CIFAR-10 40/250/4000,
# CIFAR-100 400/2500/10000, SVHN 40/250/1000, STL-10 1000), 5 seeds each, CTAugment; the report
# prints them beside that table (docs/fixmatch.md). Options and variables (RESULTS, SCALE, GPUS,
# SEEDS, DATA_DIR, --dry-run): docs/reproducing.md.
set -euo pipefail
# Paths (--results, --data_dir) are relative to where you call it; the code is found from here.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m scripts.sweep table_fixmatch "$@"
