#!/usr/bin/env bash
# Table 2: VAT, VAT+EntMin, VAT+PL, VAT+NS3L on CIFAR-10/4000 and CIFAR-100/10000,
# 5 seeds each (the runs it shares with Table 1 are trained once).
# Runs the protocol that most likely produced the published numbers, [PT] (PROTOCOL=pt);
# PROTOCOL=tf runs Oliver et al.'s TF code instead, in directories of its own.
# Options and variables (RESULTS, PROTOCOL, SCALE, GPUS, SEEDS, DATA_DIR, --dry-run): docs/reproducing.md.
set -euo pipefail
# Paths (--results, --data_dir) are relative to where you call it; the code is found from here.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m scripts.sweep table2 "$@"
