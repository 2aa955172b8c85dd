"""Every results.json under a results root, by cell and seed, with what each run changed.

A run's cell and seed come from its results.json, not from its path; what it changed comes from
comparing its "config" with the presets of its cell: a Figure 3 grid value, or anything else (a
--scale run's schedule, the mini table's network), its variant. Rows never mix variants."""

import dataclasses
import importlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ns3l.training.results import read_json
from ns3l.training.settings import MUTABLE_KEYS

from .tables import GRID_KEYS, METRICS, Cell, Grid, preset_values

IDENTITY_KEYS = ("method", "dataset", "seed", "n_labeled", "protocol", *MUTABLE_KEYS)

Variant = tuple[tuple[str, object], ...]  # what a run changed beyond the presets and the grid


@dataclass(frozen=True)
class RunResult:
    """One results.json: its cell, seed, whether it finished, the paper's metric."""

    path: str
    stack: str
    dataset: str
    n_labeled: int
    method: str
    seed: int
    finished: bool
    step: int
    value: float | None  # the paper's metric, None if the run has not evaluated yet
    metrics: dict
    grid: Grid
    variant: Variant
    protocol: str = ""  # the Oliver stack's; "" for MixMatch
    split_rule: str = ""
    valid: float | None = None  # the validation error the paper's model selection used
    diverged: bool = False  # never a number in the tables

    @property
    def key(self) -> tuple:
        return (self.stack, self.dataset, self.n_labeled, self.method, self.grid, self.protocol)


@dataclass(frozen=True)
class Summary:
    """The finished seeds' values of one cell and variant, and how many seeds are unfinished."""

    values: tuple[float, ...]
    unfinished: int
    diverged: int = 0

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        # Sample standard deviation (n - 1): the paper does not say which; with one seed, none.
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan


def expected_config(
    stack: str, dataset: str, n_labeled: int, method: str, protocol: str = ""
) -> dict:
    """What a run of the cell holds in results.json "config" with no flag beyond the cell's:
    the presets (in the run's protocol), and the defaults of the stack's other RunConfig fields
    (e.g. the WRN depth)."""
    run_config = importlib.import_module(f"{stack}.config").RunConfig
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(run_config)
        if f.default is not dataclasses.MISSING
    }
    return defaults | preset_values(stack, dataset, n_labeled, method, protocol)


def deviations(record: dict) -> dict[str, object]:
    """The values of a run's configuration that differ from its cell's presets (or that the
    presets do not have)."""
    config = record["config"]
    expected = expected_config(record["stack"], record["dataset"], config["n_labeled"],
                               record["method"], config.get("protocol", ""))  # fmt: skip
    return dict(deviation_of(config, expected))


def deviation_of(config: dict, expected: dict) -> Variant:
    """The (key, value) pairs of `config` that differ from `expected`, in key order, identity
    keys aside (a run's variant is this without its grid keys)."""
    # Only the run's own keys: one the code gained after the run (e.g. a new flag) is unknown.
    return tuple(
        (key, config[key])
        for key in sorted(config)
        if key not in IDENTITY_KEYS and not _same(config[key], expected.get(key))
    )


def _same(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def load(root: Path, prefix: bool = False, problems: list[str] | None = None) -> list[RunResult]:
    """Every readable results.json under `root`, in path order; paths relative to `root`, or to
    its parent with `prefix` (several roots merged into one report). A damaged results.json, and
    a run directory with checkpoints but no results.json, is skipped with one line appended to
    `problems`."""
    runs = []
    base = root.parent if prefix else root
    problems = [] if problems is None else problems
    for config in sorted(root.rglob("config.json")):
        if (
            not (config.parent / "results.json").exists()
            and (config.parent / "checkpoints").is_dir()
        ):
            problems.append(f"{config.parent} has checkpoints but no results.json: rerun its "
                            "command to rebuild it")  # fmt: skip
    for path in sorted(root.rglob("results.json")):
        record, damage = read_json(path)
        if damage or not isinstance(record, dict) or "stack" not in record:
            problems.append(f"{damage or f'{path} is not a results.json'}: skipped; rerun its "
                            "command to rebuild it")  # fmt: skip
            continue
        changed = deviations(record)
        value = record["metrics"].get(METRICS[record["stack"]])
        runs.append(
            RunResult(
                path=str(path.parent.relative_to(base)),
                stack=record["stack"], dataset=record["dataset"],
                n_labeled=record["config"]["n_labeled"], method=record["method"],
                seed=record["seed"], finished=bool(record.get("finished")), step=record["step"],
                value=_number(value),
                metrics=record["metrics"],
                grid=tuple((k, float(v)) for k, v in changed.items() if k in GRID_KEYS),
                variant=tuple((k, v) for k, v in changed.items() if k not in GRID_KEYS),
                protocol=record["config"].get("protocol", ""),
                split_rule=record.get("split_rule", ""),
                valid=_number(record["metrics"].get("best_valid_error")),
                diverged="diverged" in record,
            )
        )  # fmt: skip
    return runs


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def summarize(runs: Sequence[RunResult]) -> Summary:
    """One value per seed, from its finished run; a seed with no finished run counts unfinished,
    or diverged if its run diverged."""
    finished = {run.seed: run.value for run in runs if run.finished and run.value is not None}
    diverged = {run.seed for run in runs if run.diverged} - finished.keys()
    unfinished = {run.seed for run in runs} - finished.keys() - diverged
    values = tuple(finished[seed] for seed in sorted(finished))
    return Summary(values, len(unfinished), len(diverged))


def by_cell(runs: Sequence[RunResult]) -> dict[tuple, dict[Variant, list[RunResult]]]:
    """Runs grouped by cell, then by variant (the presets' own runs under the variant ())."""
    groups: dict[tuple, dict[Variant, list[RunResult]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[run.key][run.variant].append(run)
    return groups


def cell_key(cell: Cell) -> tuple:
    return (cell.stack, cell.dataset, cell.n_labeled, cell.method,
            tuple((k, float(v)) for k, v in cell.grid), cell.protocol)  # fmt: skip
