"""Test error of the digits demo runs in float32 and in mixed precision, seed by seed.

    python -m bench.precision [--seeds 1,2,3] [--methods supervised,ns3l,vat+ns3l]
        [--steps 1000] [--logdir runs/bench-precision]

Each (method, seed) is trained twice with the demo's configuration (realistic_ssl.demo: WRN-10-2,
50 labels, the paper's schedule scaled to `--steps`): once in float32 and once with
`--mixed_precision` (bfloat16 on a CPU, float16 on a GPU). Prints one JSON line per run, then a
Markdown table: mean ± standard deviation over seeds of the test error at the best validation
error in each precision, and the mean paired difference with its standard error. Finished runs
are read back from their results.json, so an interrupted benchmark continues where it stopped."""

import argparse
import json
import statistics
import time
from pathlib import Path

from ns3l.training.results import RESULTS_FILE, read_results
from realistic_ssl.demo import demo_config

METRIC = "test_error_at_best_valid"


def run(method: str, seed: int, steps: int, logdir: str, mixed: bool) -> dict:
    """One demo run (or its finished results.json): the metric, the seconds, the precision."""
    from realistic_ssl.loop import train  # TensorFlow starts here

    root = f"{logdir}/{'mixed' if mixed else 'float32'}/seed{seed}"
    config = demo_config(method, steps, seed, root, mixed_precision=mixed)
    path = Path(config.logdir) / RESULTS_FILE
    start = time.monotonic()
    finished = path.exists() and read_results(config.logdir)["finished"]
    result = read_results(config.logdir) if finished else train(config)
    return {
        "method": method, "seed": seed, "precision": result["precision"],
        METRIC: result["metrics"][METRIC], "seconds": round(time.monotonic() - start, 1),
        "reused": finished,
    }  # fmt: skip


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def table(records: list[dict], methods: list[str]) -> str:
    lines = [
        "| method | float32 | mixed | mixed − float32, paired mean ± s.e. | seeds |",
        "|---|---|---|---|---|",
    ]
    for method in methods:
        pairs = {}
        for record in records:
            if record["method"] == method:
                mixed = record["precision"] != "float32"
                pairs.setdefault(record["seed"], {})[mixed] = record[METRIC]
        full = [p[False] for p in pairs.values()]
        low = [p[True] for p in pairs.values()]
        differences = [b - a for a, b in zip(full, low, strict=True)]
        error = (
            statistics.stdev(differences) / len(differences) ** 0.5
            if len(differences) > 1
            else float("nan")
        )
        lines.append(
            f"| {method} | {mean_std(full)} | {mean_std(low)} "
            f"| {statistics.mean(differences):+.2f} ± {error:.2f} | {len(differences)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--methods", default="supervised,ns3l,vat+ns3l")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--logdir", default="runs/bench-precision")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    records = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for method in methods:
            for mixed in (False, True):
                records.append(run(method, seed, args.steps, args.logdir, mixed))
                print(json.dumps(records[-1]), flush=True)
    print(table(records, methods))
    return records


if __name__ == "__main__":
    main()
