"""The main job on the embedded digits set: NS3L on two stacks, 50 labels, offline.

    python -m scripts.demo                      # about 18 minutes on 2 CPU cores
    python -m scripts.demo --methods=supervised,ns3l,vat+ns3l    # the Oliver stack's 3: 6-8 min

Oliver et al.'s stack, in the protocol of NS3L's Tables 1-2 (realistic_ssl/demo.py): supervised,
NS3L and VAT + NS3L on a WRN-10-2 for 1,000 steps, each scored as Table 1 is, by the test error
at the best validation error. FixMatch's stack (fixmatch/demo.py): FixMatch and FixMatch + NS3L,
the combination no paper has, on a small ResNet for 384 iterations, scored as the FixMatch paper
is, by the median of the last 20 EMA test errors; the table also gives the last evaluation,
since in so short a run the last 20 evaluations reach back to its early ones. Every run uses
TensorFlow's op determinism, so the table is the same on every run on the same kind of CPU.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner
# TensorFlow's other C++ lines: filtered unless --verbose, when run as a command (python -m, or
# the installed ns3l-demo), never when imported (ns3l/training/console.py).
if __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("ns3l-"):
    os.environ["NS3L_NATIVE_LOGS"] = "verbose" if "--verbose" in sys.argv else "filter"

import argparse
import importlib
import time
from collections.abc import Callable

from fixmatch import demo as fixmatch_demo
from ns3l.errors import UsageError, expected
from ns3l.training.settings import RunConfig
from realistic_ssl import demo as realistic_demo
from realistic_ssl import presets as realistic_presets

OLIVER, FIXMATCH = ("supervised", "ns3l", "vat+ns3l"), ("fixmatch", "fixmatch+ns3l")
METHODS = (*OLIVER, *FIXMATCH)


def parse_methods(text: str) -> tuple[str, ...]:
    """`--methods`: a comma-separated subset of METHODS, run in METHODS' order."""
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    for name in chosen:
        if name not in METHODS:
            raise expected("--methods", name, METHODS)
    if not chosen:
        raise UsageError(f"--methods={text!r}: expected one or more of {', '.join(METHODS)}")
    return tuple(name for name in METHODS if name in chosen)


def configs(args: argparse.Namespace) -> list[tuple[str, RunConfig]]:
    """(method, its RunConfig) for each chosen method, checked before TensorFlow loads."""
    options = {"xla": args.xla, "mixed_precision": args.mixed_precision}
    runs = []
    for method in parse_methods(args.methods):
        if method in OLIVER:
            config = realistic_demo.demo_config(
                method, args.steps, args.seed, args.logdir, args.protocol, **options
            )
        else:
            config = fixmatch_demo.demo_config(
                method, args.seed, f"{args.logdir}/fixmatch", args.fixmatch_kimg, **options
            )
        runs.append((method, config))
    return runs


def trainer(method: str) -> Callable[..., dict]:
    """The `train` of `method`'s stack (its loop module loads TensorFlow)."""
    return importlib.import_module(
        "realistic_ssl.loop" if method in OLIVER else "fixmatch.loop"
    ).train


def row(method: str, metrics: dict, seconds: float) -> str:
    """One line of the table: its paper's number and what it is."""
    if method in OLIVER:
        error = metrics["test_error_at_best_valid"]
        how = f"at the best valid error (step {metrics['best_step']})"
    else:
        error = metrics["median_test_error_last20"]
        how = f"median of the last 20 (last: {metrics['median_test_error_last1']:.1f})"
    return f"| {method} | {error:.1f} | {how} | {seconds / 60:.1f} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated (all): {', '.join(METHODS)}"
    )
    parser.add_argument("--steps", type=int, default=1000, help="the Oliver stack's steps (1000)")
    parser.add_argument(
        "--fixmatch_kimg", type=int, default=fixmatch_demo.SMALL["train_kimg"],
        help="FixMatch's length in 1,024 labeled images (24: 384 iterations)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="labeled split, init, augmentation")
    parser.add_argument("--logdir", default="runs/demo", help="runs/demo: one directory per run")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    parser.add_argument(
        "--protocol", choices=realistic_presets.PROTOCOLS,
        default=realistic_presets.DEFAULT_PROTOCOL, help="the Oliver stack's protocol",
    )  # fmt: skip
    parser.add_argument("--xla", action="store_true", help="XLA (slower on CPUs)")
    parser.add_argument("--mixed_precision", action="store_true", help="bfloat16 on a CPU")
    args = parser.parse_args(argv)
    try:
        runs = configs(args)
    except UsageError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    rows, stacks = [], {}
    for method, config in runs:
        print(f"== {method}: {config.logdir}", flush=True)
        start = time.monotonic()
        rows.append(row(method, trainer(method)(config)["metrics"], time.monotonic() - start))
        if method in OLIVER:
            stacks["oliver"] = f"Oliver et al. ({args.protocol}): WRN-10-2, {args.steps} steps"
        else:
            stacks["fixmatch"] = f"FixMatch: 16-filter ResNet, {config.iterations} iterations"
    print(f"\ndigits, 50 labels, seed {args.seed}, test error %. {'; '.join(stacks.values())}\n")
    print("| method | test error | its paper's metric | minutes |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
