#!/usr/bin/env bash
# Figure 3: 4 thresholds x 3 weights for NS3L and VAT+NS3L on CIFAR-10/4000 and
# MixMatch+NS3L on SVHN/250, 5 seeds each (grid values: scripts/tables.py).
# Options and variables (RESULTS, PROTOCOL, SCALE, GPUS, SEEDS, DATA_DIR, --dry-run): docs/reproducing.md.
set -euo pipefail
# Paths (--results, --data_dir) are relative to where you call it; the code is found from here.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m scripts.sweep figure3 "$@"
