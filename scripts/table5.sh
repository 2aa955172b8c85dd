#!/usr/bin/env bash
# Table 5: MixMatch and MixMatch+NS3L on STL-10 with 1000 labels, 5 seeds each.
# Options and variables (RESULTS, SCALE, GPUS, SEEDS, DATA_DIR, --dry-run): docs/reproducing.md.
set -euo pipefail
# Paths (--results, --data_dir) are relative to where you call it; the code is found from here.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m scripts.sweep table5 "$@"
