"""The main job on the embedded digits set: supervised, NS3L and VAT+NS3L with 50 labels.

    python -m realistic_ssl.demo            # about 6 minutes on 2 CPU cores, offline

Same code path as a paper run (realistic_ssl.loop), in the protocol of the paper's numbers
(`--protocol=pt`, the default; `tf` for Oliver et al.'s TF code), with two changes for a CPU
budget: a WRN-10-2 instead of WRN-28-2, and the paper's schedule scaled from 200,000 to `--steps`
steps (warm-up 1/4, lr decay at 13/20, an evaluation every 1/10). Under `tf` the BN moving
averages decay at 0.99 instead of 0.999, because a 0.999 average still weighs its initial value
by 0.999^1000 = 37% after 1,000 steps, and evaluation uses it ([PT]'s 0.9 needs no change).
Presets otherwise: lr, λ1, λ2, T.
The runs use TensorFlow's op determinism (`--deterministic` of the train command; no slower
here), so the table is the same on every run on the same kind of machine.
The table is test error at the best validation error (spec §3.5), as in the paper's Table 1.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner
# TensorFlow's other C++ lines: filtered unless --verbose, when run as a command (python -m, or
# the installed ns3l-* script), never when imported (ns3l/training/console.py).
if __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("ns3l-"):
    os.environ["NS3L_NATIVE_LOGS"] = "verbose" if "--verbose" in sys.argv else "filter"


import argparse
import time

from ns3l.training.settings import scaled_settings
from realistic_ssl import presets
from realistic_ssl.config import RunConfig

METHODS = ("supervised", "ns3l", "vat+ns3l")


def demo_config(
    method: str, steps: int, seed: int, logdir: str, protocol: str = "pt", **options
) -> RunConfig:
    """The demo's run of `method`, deterministic; `options` are RunConfig fields (xla,
    mixed_precision, ...)."""
    settings = presets.resolve(method, "digits", {}, protocol)
    # The trainers' --schedule_scale rule, then more evaluations to select the model from.
    settings = scaled_settings(settings, presets.SCHEDULE, steps / settings["train_steps"].value)
    settings["eval_every"] = presets.Setting(max(steps // 10, 1), "demo: every 1/10 of the run")
    if settings["bn_momentum"].value > 0.99:
        settings["bn_momentum"] = presets.Setting(0.99, f"demo: 0.999^{steps} keeps too much")
    return RunConfig(
        method=method, dataset="digits", seed=seed, logdir=f"{logdir}/{protocol}/{method}",
        settings=settings, protocol=protocol, wrn_depth=10, wrn_width=2,
        **({"deterministic": True} | options),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logdir", default="runs/demo")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    parser.add_argument("--protocol", choices=presets.PROTOCOLS, default=presets.DEFAULT_PROTOCOL)
    parser.add_argument("--xla", action="store_true", help="XLA (slower on CPUs)")
    parser.add_argument("--mixed_precision", action="store_true", help="bfloat16 on a CPU")
    args = parser.parse_args()
    options = {"xla": args.xla, "mixed_precision": args.mixed_precision}
    from realistic_ssl.loop import train  # TensorFlow starts here

    rows = []
    for method in METHODS:
        config = demo_config(method, args.steps, args.seed, args.logdir, args.protocol, **options)
        print(f"== {method}: {config.logdir}", flush=True)
        start = time.monotonic()
        metrics = train(config)["metrics"]
        rows.append((method, metrics, time.monotonic() - start))
    print(
        f"\ndigits, 50 labels, seed {args.seed}, protocol {args.protocol}, WRN-10-2, "
        f"{args.steps} steps (test error %)\n"
    )
    # The best step, not the last step's test error: [PT] tests only when validation improves.
    print("| method | test error at best valid | best step | minutes |")
    print("|---|---|---|---|")
    for method, metrics, seconds in rows:
        print(
            f"| {method} | {metrics['test_error_at_best_valid']:.1f} "
            f"| {metrics['best_step']} | {seconds / 60:.1f} |"
        )


if __name__ == "__main__":
    main()
