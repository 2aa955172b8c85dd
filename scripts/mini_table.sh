#!/usr/bin/env bash
# The Table 1 methods and MixMatch ± NS3L on the embedded digits set (50 labels, 3 seeds), small
# networks and short schedules, one run at a time on CPU, then the report (docs/reproducing.md).
set -euo pipefail
# Paths (--results, --data_dir) are relative to where you call it; the code is found from here.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m scripts.sweep mini --report "$@"
