"""Run a paper table (or Figure 3, the CPU mini table, a tuning grid): every cell at every seed.

    python -m scripts.sweep table1 [--results runs/paper] [--protocol pt] [--scale 0.01] [--dry-run]
    python -m scripts.sweep tune --preset vat+pl           # or --method, --dataset, --grid k=a,b

Each run is one `python -m realistic_ssl.train` or `python -m mixmatch.train` command that passes
only the method, data set, labels, seed, logdir, the Oliver stack's --protocol, --data_dir and the
table's own values (a grid point; the mini table's network and schedule): everything else comes
from the presets. A run lives in `<results>/<dataset>@<n>/[<protocol>/]<method>[/<grid
point>]/seed<k>`; one whose results.json says finished is skipped, one cut off resumes from its
checkpoint (the same command resumes), and one whose directory holds a different configuration
is reported and left alone. Runs spread over the GPUs (`--gpus`, $GPUS, or `nvidia-smi -L`), one
per GPU at a time; without a GPU, one at a time.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads (with the presets)
# TensorFlow's C++ lines filtered when run as a command, as the trainers do (ns3l/__init__.py).
if __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("ns3l-"):
    os.environ["NS3L_NATIVE_LOGS"] = "filter"

import argparse
import importlib
import json
import math
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from absl import flags

from ns3l.errors import UsageError
from ns3l.training.datasets import missing_data
from ns3l.training.results import read_json
from ns3l.training.settings import DERIVED_KEYS, MUTABLE_KEYS, RunConfig, scale_schedule

from . import scheduler, slurm
from . import status as run_status
from .compute import estimate_line
from .status import LOG_FILE, SLURM_JOB_FILE
from .tables import (
    DEFAULT_PROTOCOL,
    FIXMATCH,
    MIXMATCH,
    REALISTIC,
    TABLES,
    TUNE_PRESETS,
    Cell,
    Table,
    preset_values,
    tune_table,
)


@dataclass(frozen=True)
class Run:
    """One training command of a table: a cell at a seed."""

    cell: Cell
    seed: int
    logdir: Path
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.cell.path}/seed{self.seed}"


def scaled_schedule(cell: Cell, flags: dict[str, object], scale: float) -> dict[str, int]:
    """The stack's schedule (from `flags`, else the presets) times `scale`, by the trainers' own
    --schedule_scale rule (`scale_schedule`), written out as flags so a dry run shows them."""
    values = preset_values(cell.stack, cell.dataset, cell.n_labeled, cell.method, cell.protocol)
    values |= flags
    schedule = importlib.import_module(f"{cell.stack}.presets").SCHEDULE
    return scale_schedule(values, schedule, scale)


def command(
    cell: Cell,
    seed: int,
    logdir: Path,
    table: Table,
    scale: float = 1.0,
    data_dir: str | None = None,
    python: str = sys.executable,
    execution: Sequence[str] = (),
) -> tuple[str, ...]:
    """The training command of `cell` at `seed`: identity flags (and the protocol), then the
    table's own values, then `execution` flags (`--xla`, `--mixed_precision`)."""
    argv = [
        python, "-m", f"{cell.stack}.train", f"--method={cell.method}",
        f"--dataset={cell.dataset}", f"--n_labeled={cell.n_labeled}", f"--seed={seed}",
        f"--logdir={logdir}",
    ]  # fmt: skip
    if cell.protocol:
        argv.append(f"--protocol={cell.protocol}")
    if data_dir:
        argv.append(f"--data_dir={data_dir}")
    flags = table.flags_of(cell)
    flags |= dict(cell.grid)
    if scale != 1:
        flags |= scaled_schedule(cell, flags, scale)
    return (*argv, *(f"--{name}={value}" for name, value in flags.items()), *execution)


def plan(
    table: Table,
    root: Path,
    scale: float = 1.0,
    data_dir: str | None = None,
    seeds: Sequence[int] | None = None,
    python: str = sys.executable,
    execution: Sequence[str] = (),
    protocol: str = DEFAULT_PROTOCOL,
) -> list[Run]:
    """Every run of `table`, seed by seed (a partial sweep has whole tables of its first seeds),
    the Oliver stack's cells in `protocol`."""
    runs = []
    for seed in seeds or table.seeds:
        for cell in table.with_protocol(protocol).cells:
            logdir = root / cell.path / f"seed{seed}"
            argv = command(cell, seed, logdir, table, scale, data_dir, python, execution)
            runs.append(Run(cell, seed, logdir, argv))
    return runs


def resolved_config(argv: Sequence[str]) -> RunConfig:
    """The configuration a train command will run, resolved in this process exactly as the
    command resolves it (its own flag parser, its presets); UsageError on a bad flag."""
    start = list(argv).index("-m") + 1
    train = importlib.import_module(argv[start])
    train.FLAGS.unparse_flags()  # a parse keeps the values of flags it is not given
    try:
        train.FLAGS([argv[start], *argv[start + 1 :]])
        return train.config_from_flags()
    finally:
        train.FLAGS.unparse_flags()  # leave the module as it was for the next caller


def comparable(config: dict) -> dict:
    """A configuration without the keys a resumed run may change, and without those the loop
    derives (a command's own `--mixed_precision` stands for its precision), through JSON and
    back."""
    ignored = {*MUTABLE_KEYS, *DERIVED_KEYS}
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k not in ignored}


def status(run: Run) -> tuple[str, str]:
    """("new" | "resume" | "finished" | "diverged" | "conflict", why). A directory holds this run
    if its first start (config.json) had this command's configuration, value for value. A
    finished run that predates a configuration key added since (or has one removed since) still
    counts as this run; an unfinished one does not, because its train.py refuses to resume it
    (docs/runs.md). A damaged or missing results.json makes the run one to resume: its command
    rebuilds the file from the last checkpoint. A diverged run is not run again."""
    want = comparable(resolved_config(run.argv).as_json())  # also checks every command's flags
    config_file, results_file = run.logdir / "config.json", run.logdir / "results.json"
    if not config_file.exists() and not results_file.exists():
        return "new", ""
    results, damage = read_json(results_file) if results_file.exists() else ({}, None)
    started, config_damage = read_json(config_file) if config_file.exists() else (None, None)
    results = results if isinstance(results, dict) else {}
    if damage:
        print(f"# {damage}: resumed, its command rebuilds it", file=sys.stderr)
    started = started if started is not None else results.get("config")
    if started is None:
        return "resume", f"({config_damage or 'no configuration recorded'})"
    have = comparable(started)
    finished = bool(results.get("finished"))
    keys = want.keys() & have.keys() if finished else want.keys() | have.keys()
    differing = sorted(k for k in keys if not _same(want.get(k), have.get(k)))
    if differing:
        shown = ", ".join(f"{k}={have.get(k, 'unset')} (this sweep: {want.get(k, 'unset')})"
                          for k in differing)  # fmt: skip
        return "conflict", f"{run.logdir} holds another run: {shown}"
    if finished:
        return "finished", ""
    if "diverged" in results:
        return "diverged", f"{run.logdir} diverged at step {results['diverged']['step']}"
    return "resume", f"at step {results.get('step', 0)}"


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table == "status":
        return show_status(Path(args.results or "runs/paper"), args.scale, args.data_dir)
    try:
        table = TABLES[args.table] if args.table != "tune" else tuning(args)
        root = Path(args.results or table.default_root)
        execution = [f"--{name}" for name in ("xla", "mixed_precision") if getattr(args, name)]
        runs = plan(table, root, args.scale, args.data_dir, args.seeds, execution=execution,
                    protocol=args.protocol)  # fmt: skip
        states = [status(run) for run in runs]
        options = slurm_options(args) if args.executor == "slurm" else None
    except (UsageError, flags.Error) as error:  # a command its train.py would refuse
        print(f"error: {error}", file=sys.stderr)
        return 2
    states = in_progress(runs, states)
    todo = [run for run, (state, _) in zip(runs, states, strict=True) if state in ("new", "resume")]
    gpus = scheduler.detect_gpus() if args.gpus is None else scheduler.parse_gpus(args.gpus)
    for run, (state, why) in zip(runs, states, strict=True):
        if state in ("conflict", "diverged"):
            print(f"# {state}, not run: {why}", file=sys.stderr)
        elif args.dry_run and state == "finished":
            print(f"# finished: {run.logdir}")
        elif args.dry_run:
            print(f"# {state} {why}".rstrip() + f"\n{shlex.join(run.argv)}")
    kinds = ("resume", "finished", "conflict", "diverged", "running", "queued")
    counts = {s: sum(state == s for state, _ in states) for s in kinds}
    device = f"GPUs {','.join(gpus)}, one run per GPU" if gpus else "CPU, one run at a time"
    if options is not None:
        device = f"Slurm, one array task per run: {options.describe()}"
    busy = f", {counts['running']} running, {counts['queued']} queued" if counts["running"] or (
        counts["queued"]) else ""  # fmt: skip
    print(
        f"# {table.name}: {len(runs)} runs under {root}: {len(todo)} to run "
        f"({counts['resume']} resumed), {counts['finished']} finished, "
        f"{counts['conflict']} conflicts, {counts['diverged']} diverged{busy}; {device}"
    )
    for name in sorted({run.cell.dataset for run in todo}):
        missing = missing_data(name, args.data_dir)
        if missing:
            print(f"# warning: {missing}", file=sys.stderr)
    if todo:
        device, slots = ("gpu", options.max_parallel or len(todo)) if options else (
            ("gpu", len(gpus)) if gpus else ("cpu", 1))  # fmt: skip
        done = [(resolved_config(run.argv), steps_done(run)) for run in todo]
        print(estimate_line(done, device, slots))
    refused = counts["conflict"] + counts["diverged"]
    if options is not None and todo:
        if args.dry_run:
            print(f"# would submit one Slurm array of {len(todo)} tasks, {options.describe()}")
        else:
            submit_to_slurm(table, root, todo, options)
    if args.dry_run or options is not None:
        return 1 if refused else 0
    signal.signal(signal.SIGTERM, _interrupt)  # a killed sweep stops its runs too
    jobs = [scheduler.Job(run.name, run.argv, run.logdir / LOG_FILE) for run in todo]
    try:
        codes = scheduler.run_all(jobs, gpus, scheduler.SubprocessRunner())
    except KeyboardInterrupt:
        print("# interrupted: the same command resumes every unfinished run", file=sys.stderr)
        return 130
    failed = [job.name for job, code in zip(jobs, codes, strict=True) if code != 0]
    if failed:
        print(f"# {len(failed)} runs failed (see {LOG_FILE} in each): {', '.join(failed)}")
    if args.report:
        from . import report

        report.main([str(root)])
    return 1 if failed or refused else 0


def steps_done(run: Run) -> int:
    """The steps a run to resume has behind it (its results.json), 0 for a new one."""
    results, _ = read_json(run.logdir / "results.json")
    return int(results.get("step", 0)) if isinstance(results, dict) else 0


def in_progress(runs: Sequence[Run], states: list) -> list:
    """`states` with each new or cut run that another process is training now ("running": its
    logdir is locked) or that Slurm has queued or running ("queued"), so a sweep submitted
    twice submits only what is missing."""
    jobs = {run.logdir: (run.logdir / SLURM_JOB_FILE).read_text().strip() for run in runs
            if (run.logdir / SLURM_JOB_FILE).exists()}  # fmt: skip
    slurm = run_status.slurm_states(jobs.values())
    updated = []
    for run, (state, why) in zip(runs, states, strict=True):
        if state in ("new", "resume") and run_status.lock_held(run.logdir):
            state, why = "running", "in another process"
        elif state in ("new", "resume") and jobs.get(run.logdir) in slurm:
            state, why = "queued", f"Slurm job {jobs[run.logdir]}"
        updated.append((state, why))
    return updated


def slurm_options(args: argparse.Namespace) -> slurm.SlurmOptions:
    return slurm.SlurmOptions(
        partition=args.slurm_partition, gpus_per_run=args.slurm_gpus_per_run,
        time_minutes=args.slurm_time, max_parallel=args.slurm_max_parallel,
        account=args.slurm_account, extra=slurm.parse_extra(args.slurm_extra),
    )  # fmt: skip


def submit_to_slurm(
    table: Table, root: Path, todo: Sequence[Run], options: slurm.SlurmOptions
) -> None:
    """One job array of `todo` through submitit; each run's job id in its logdir."""
    folder = root / "slurm" / time.strftime("%Y%m%d-%H%M%S")
    tasks = [slurm.TrainTask(run.argv, str(run.logdir / LOG_FILE)) for run in todo]
    jobs = slurm.submit(tasks, slurm.executor(folder, options, name=f"ns3l-{table.name}"))
    for run, job in zip(todo, jobs, strict=True):
        run.logdir.mkdir(parents=True, exist_ok=True)
        (run.logdir / SLURM_JOB_FILE).write_text(job.job_id + "\n")
    array = jobs[0].job_id.split("_")[0]
    print(f"# submitted {len(jobs)} runs as Slurm job {array} (logs: {folder}); "
          f"`python -m scripts.sweep status --results {root}` follows them")  # fmt: skip


def show_status(root: Path, scale: float = 1.0, data_dir: str | None = None) -> int:
    """Per table with runs under `root` (the Oliver stack's per protocol): finished, running,
    queued, failed with the last log line, diverged, unfinished, not started, or holding another
    configuration than the sweep of `scale` and `data_dir` would run."""
    if not root.is_dir():
        print(f"error: --results={root} is not a directory", file=sys.stderr)
        return 2
    protocols = sorted({p.name for p in root.glob("*@*/*") if p.name in ("pt", "tf")}) or ["pt"]
    shown = 0
    for table in TABLES.values():
        for protocol in protocols if any(c.stack == REALISTIC for c in table.cells) else [""]:
            runs = plan(table, root, scale, data_dir, protocol=protocol or "pt")
            if not any(run.logdir.exists() for run in runs):
                continue
            conflicts = {}
            for run in runs:
                state, why = status(run) if run.logdir.exists() else ("new", "")
                if state == "conflict":
                    conflicts[run.logdir] = why.split(": ", 1)[-1]
            if all(run.logdir in conflicts for run in runs if run.logdir.exists()):
                continue  # another table's runs in shared directories (the demo's and mini's)
            name = f"{table.name} ({protocol})" if protocol else table.name
            logdirs = [run.logdir for run in runs]
            print("\n".join(run_status.summary(name, logdirs, root, conflicts)))
            shown += 1
    if not shown:
        print(f"no runs of any table under {root}")
    return 0


def tuning(args: argparse.Namespace) -> Table:
    """The table of `sweep tune`: a named grid (`--preset`) or one cell's `--grid`s."""
    if args.preset:
        return tune_table(TUNE_PRESETS[args.preset])
    if not (args.method and args.grid):
        raise UsageError("tune: expected --preset NAME, or --method, --dataset and --grid k=a,b")
    stack = {"mixmatch": MIXMATCH, "fixmatch": FIXMATCH}.get(args.method.split("+")[0], REALISTIC)
    n_labeled = args.n_labeled or preset_values(stack, args.dataset, 0, args.method)["n_labeled"]
    space = dict(args.grid)
    return tune_table((((stack, args.dataset, n_labeled, args.method), space),))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.sweep", description=__doc__.split("\n")[0]
    )
    env = os.environ
    parser.add_argument(
        "table", choices=[*sorted(TABLES), "tune", "status"],
        help="a table to run; `tune` a grid; `status` what every table's runs are doing",
    )  # fmt: skip
    parser.add_argument(
        "--protocol", choices=("pt", "tf"), default=env.get("PROTOCOL", DEFAULT_PROTOCOL),
        help="the Oliver stack's protocol ($PROTOCOL; default pt, the paper's most likely one)",
    )  # fmt: skip
    tune = parser.add_argument_group("tune", "a tuning grid (scripts/tune.sh)")
    tune.add_argument("--preset", choices=sorted(TUNE_PRESETS), help="a named grid")
    tune.add_argument("--method", help="the method to tune, e.g. vat+pl")
    tune.add_argument("--dataset", default="cifar10", help="its data set (cifar10)")
    tune.add_argument("--n_labeled", type=int, help="its labels (default: the preset's)")
    tune.add_argument(
        "--grid", type=_grid, action="append", default=[], metavar="NAME=V1,V2",
        help="values of one setting; repeat for more, e.g. --grid pl_weight=0.3,1,3",
    )  # fmt: skip
    parser.add_argument(
        "--results", default=env.get("RESULTS"), help="results root ($RESULTS; default "
        "runs/paper, runs/mini for the mini table)",
    )  # fmt: skip
    parser.add_argument(
        "--scale", type=_scale, default=env.get("SCALE", "1"),
        help="shorten every run's schedule by this factor in (0, 1] ($SCALE; default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--gpus", default=env.get("GPUS"),
        help="GPU indices, e.g. 0,1 ($GPUS; default: nvidia-smi -L; 'none' for CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=_seeds, default=env.get("SEEDS"),
        help="seeds to run, e.g. 1,2 ($SEEDS; default: the table's, 1-5)",
    )  # fmt: skip
    parser.add_argument(
        "--data_dir", default=env.get("DATA_DIR"), help="TFDS data directory ($DATA_DIR)"
    )
    parser.add_argument(
        "--xla", action="store_true", default=_yes(env.get("XLA")),
        help="every run with --xla ($XLA=1; for GPUs, docs/performance.md)",
    )  # fmt: skip
    parser.add_argument(
        "--mixed_precision", action="store_true", default=_yes(env.get("MIXED_PRECISION")),
        help="every run with --mixed_precision ($MIXED_PRECISION=1; float16 on GPUs)",
    )  # fmt: skip
    slurm_group = parser.add_argument_group(
        "executor", "where the runs go: this machine's GPUs, or a Slurm job array (submitit)"
    )
    slurm_group.add_argument(
        "--executor", choices=("local", "slurm"), default=env.get("EXECUTOR", "local"),
        help="local (default; $EXECUTOR) or slurm: one array task per run, submitted, not waited",
    )  # fmt: skip
    slurm_group.add_argument(
        "--slurm_partition",
        default=env.get("SLURM_PARTITION"),
        help="partition ($SLURM_PARTITION; default: the cluster's)",
    )
    slurm_group.add_argument(
        "--slurm_gpus_per_run",
        type=int,
        default=1,
        help="GPUs per run (1; the trainer uses all it gets)",
    )
    slurm_group.add_argument(
        "--slurm_time",
        type=int,
        default=24 * 60,
        help="minutes per task (1440); a longer run is requeued",
    )
    slurm_group.add_argument(
        "--slurm_max_parallel",
        type=int,
        default=256,
        help="array throttle: tasks running at once (256)",
    )
    slurm_group.add_argument(
        "--slurm_account",
        default=env.get("SLURM_ACCOUNT"),
        help="account to charge ($SLURM_ACCOUNT)",
    )
    slurm_group.add_argument("--slurm_extra", default=None, metavar="KEY=VALUE,...",
                             help="more sbatch options, e.g. qos=high,constraint=a100")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    parser.add_argument("--report", action="store_true", help="print the report afterwards")
    return parser.parse_args(argv)


def _yes(text: str | None) -> bool:
    return (text or "").lower() in ("1", "yes", "true")


def _scale(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"--scale={text}: expected a factor in (0, 1]")
    return value


def _grid(text: str) -> tuple[str, tuple[float, ...]]:
    name, _, values = text.partition("=")
    try:
        return name, tuple(float(v) for v in values.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--grid {text}: expected NAME=V1,V2,...") from None


def _seeds(text: str) -> tuple[int, ...]:
    seeds = tuple(int(seed) for seed in text.split(","))
    if any(seed < 1 for seed in seeds):
        raise argparse.ArgumentTypeError(f"--seeds={text}: expected labeled splits 1, 2, ...")
    return seeds


if __name__ == "__main__":
    sys.exit(main())
