"""Which runs each paper table and Figure 3 need, and the numbers the paper published for them.

A run is a cell (stack, data set, labels, method, Figure 3 grid point) at one seed; seeds 1-5 are
the paper's five labeled splits (NS3L §4.4). Tables share cells: Table 2's VAT, VAT + EntMin and
VAT + NS3L are Table 1's runs, and the Figure 3 point at a table's own values is that table's run,
so each run trains once and is reported wherever it appears. Hyperparameters are not repeated
here: the commands resolve them from the stacks' presets (docs/reproducing.md).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from mixmatch import presets as mixmatch_presets
from realistic_ssl import presets as realistic_presets

REALISTIC, MIXMATCH = "realistic_ssl", "mixmatch"
PRESETS = {REALISTIC: realistic_presets, MIXMATCH: mixmatch_presets}
PAPER_SEEDS = (1, 2, 3, 4, 5)  # NS3L §4.4: "5 splits ..., each with a different seed"
# The paper's number in each stack's results.json (NS3L §4.4; spec §3.5 and mixmatch spec §4).
METRICS = {REALISTIC: "test_error_at_best_valid", MIXMATCH: "median_test_error_last20"}
# The values a Figure 3 grid point changes; every other value stays at the preset (NS3L §5).
GRID_KEYS = ("ns3l_threshold", "ns3l_weight")

Grid = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Cell:
    """One (stack, data set, labels, method) of a table, at a Figure 3 grid point if `grid`."""

    stack: str
    dataset: str
    n_labeled: int
    method: str
    grid: Grid = ()  # only the values that differ from the preset, as (setting, value)

    @property
    def path(self) -> str:
        """`cifar10@4000/vat+ns3l`, and for a grid point `cifar10@4000/ns3l/T0.02-w0.3`."""
        base = f"{self.dataset}@{self.n_labeled}/{self.method}"
        return f"{base}/{grid_label(self.grid)}" if self.grid else base


@dataclass(frozen=True, eq=False)
class Table:
    """A paper table (or figure) as cells, the seeds of each, and flags every run of a stack gets
    beyond the presets (only the CPU mini table has any: a small network, a short schedule)."""

    name: str
    title: str
    cells: tuple[Cell, ...]
    seeds: tuple[int, ...] = PAPER_SEEDS
    flags: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    default_root: str = "runs/paper"


def grid_label(grid: Grid) -> str:
    short = {"ns3l_threshold": "T", "ns3l_weight": "w"}
    return "-".join(f"{short[name]}{value:g}" for name, value in grid)


def preset_values(stack: str, dataset: str, n_labeled: int, method: str) -> dict[str, object]:
    """Every hyperparameter of the cell as its stack's presets resolve it, without flags."""
    settings = PRESETS[stack].resolve(method, dataset, {"n_labeled": n_labeled})
    return {name: setting.value for name, setting in settings.items()}


def cells(stack: str, datasets: tuple[tuple[str, int], ...], methods: tuple[str, ...]):
    return tuple(Cell(stack, d, n, m) for d, n in datasets for m in methods)


def grid_cells(
    stack: str, dataset: str, n_labeled: int, method: str,
    thresholds: tuple[float, ...], weights: tuple[float, ...],
) -> tuple[Cell, ...]:  # fmt: skip
    """One cell per (T, λ1); a value equal to the preset is left out, so the point at the table's
    own values is the table's run."""
    preset = preset_values(stack, dataset, n_labeled, method)
    points = []
    for weight in weights:
        for threshold in thresholds:
            point = {"ns3l_threshold": threshold, "ns3l_weight": weight}
            grid = tuple((k, v) for k, v in point.items() if v != preset[k])
            points.append(Cell(stack, dataset, n_labeled, method, grid))
    return tuple(points)


TABLE1_METHODS = ("supervised", "pl", "ns3l", "vat", "vat+em", "pi", "pi+ns3l", "vat+ns3l")
TABLE2_METHODS = ("vat", "vat+em", "vat+pl", "vat+ns3l")
MIXMATCH_METHODS = ("mixmatch", "mixmatch+ns3l")
# Figure 3 grid (NS3L §5 gives 4 thresholds x 3 weights but not their values): T around the
# optimum T ≈ 0.04 that the paper finds in every panel, holding both tables' values (0.04 in the
# Oliver stack, 0.05 with MixMatch) and about half and double; λ1 spaced ~3x around each panel's
# optimum (1 for NS3L, 0.3 with VAT, 2 with MixMatch).
FIGURE3_THRESHOLDS = (0.02, 0.04, 0.05, 0.08)
FIGURE3_WEIGHTS = {
    "ns3l": (0.3, 1.0, 3.0),
    "vat+ns3l": (0.1, 0.3, 1.0),
    "mixmatch+ns3l": (1.0, 2.0, 5.0),
}
FIGURE3_PANELS = (
    (REALISTIC, "cifar10", 4000, "ns3l"),
    (REALISTIC, "cifar10", 4000, "vat+ns3l"),
    (MIXMATCH, "svhn", 250, "mixmatch+ns3l"),
)
# The CPU mini table (scripts/mini_table.sh): the README demo's network and BN decay, the paper's
# schedule scaled as the demo scales it (warm-up 1/4, decay at 13/20, 10 evaluations) but to 400
# steps, not 1,000: 30 runs in 30 minutes on 2 cores (600 steps took 36, docs/reproducing.md).
# MixMatch at half width and depth for 384 iterations, EMA and BN decay 0.99 for so short a run,
# its λ_U ramp an eighth of the run (the paper's sixty-fourth would be 6 iterations).
MINI_FLAGS = {
    REALISTIC: {
        "wrn_depth": 10, "wrn_width": 2, "bn_momentum": 0.99,
        "train_steps": 400, "lr_decay_steps": 260, "warmup_steps": 100, "eval_every": 40,
    },
    MIXMATCH: {
        "filters": 16, "repeat": 2, "bn_momentum": 0.99, "ema": 0.99,
        "train_kimg": 24, "warmup_kimg": 3, "report_kimg": 1,
    },
}  # fmt: skip

TABLES = {
    table.name: table
    for table in (
        Table(
            "table1", "Table 1: Oliver et al. protocol, test error % at best validation",
            cells(REALISTIC, (("cifar10", 4000), ("svhn", 1000), ("cifar100", 10000)),
                  TABLE1_METHODS),
        ),
        Table(
            "table2", "Table 2: SSL terms on top of VAT, test error % at best validation",
            cells(REALISTIC, (("cifar10", 4000), ("cifar100", 10000)), TABLE2_METHODS),
        ),
        Table(
            "table3", "Table 3: MixMatch on CIFAR-10, median of the last 20 test errors %",
            cells(MIXMATCH, (("cifar10", 250), ("cifar10", 4000)), MIXMATCH_METHODS),
        ),
        Table(
            "table4", "Table 4: MixMatch on SVHN, median of the last 20 test errors %",
            cells(MIXMATCH, (("svhn", 250), ("svhn", 1000)), MIXMATCH_METHODS),
        ),
        Table(
            "table5", "Table 5: MixMatch on STL-10, median of the last 20 test errors %",
            cells(MIXMATCH, (("stl10", 1000),), MIXMATCH_METHODS),
        ),
        Table(
            "figure3", "Figure 3: sensitivity to T and λ1",
            tuple(
                cell
                for stack, dataset, n, method in FIGURE3_PANELS
                for cell in grid_cells(stack, dataset, n, method, FIGURE3_THRESHOLDS,
                                       FIGURE3_WEIGHTS[method])
            ),
        ),
        Table(
            "mini", "Mini table: digits, 50 labels, small networks, short schedules (CPU)",
            cells(REALISTIC, (("digits", 50),), TABLE1_METHODS)
            + cells(MIXMATCH, (("digits", 50),), MIXMATCH_METHODS),
            seeds=(1, 2, 3), flags=MINI_FLAGS, default_root="runs/mini",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Published:
    """A number as printed in the paper, and where: `Table 1, CIFAR10 row, VAT + NS3L`."""

    mean: float
    std: float
    where: str


# Column (and row) headers as the paper prints them; it spells one row "Mixmatch + NS3L".
PAPER_COLUMNS = {
    "supervised": "Supervised", "pl": "PL", "ns3l": "NS3L", "vat": "VAT",
    "vat+em": "VAT + EntMin", "pi": "Π model", "pi+ns3l": "Π + NS3L", "vat+ns3l": "VAT + NS3L",
    "vat+pl": "VAT + PL", "mixmatch": "MixMatch", "mixmatch+ns3l": "MixMatch + NS3L",
}  # fmt: skip


def _row(table: str, dataset: str, n: int, label: str, methods: tuple[str, ...], values: str):
    """Published entries of one printed row: `values` as the paper prints them, `20.76 ± .28`."""
    pairs = [v.split("±") for v in values.split(",")]
    assert len(pairs) == len(methods), label
    return {
        (table, dataset, n, method): Published(
            float(mean), float(std), f"Table {table[-1]}, {label}, {PAPER_COLUMNS[method]}"
        )
        for method, (mean, std) in zip(methods, pairs, strict=True)
    }  # fmt: skip


# Copied from the paper's tables (shared/paper/ns3l_paper.txt), each with where it is printed.
PAPER: dict[tuple[str, str, int, str], Published] = {
    **_row("table1", "cifar10", 4000, "CIFAR10 row", TABLE1_METHODS,
           "20.76±.28, 17.56±.29, 16.03±.05, 14.72±.23, 14.34±.18, 17.12±.19, 16.06±.21, "
           "13.94±.10"),
    **_row("table1", "svhn", 1000, "SVHN row", TABLE1_METHODS,
           "12.39±.53, 7.70±.22, 6.52±.22, 6.20±.11, 6.10±.02, 8.48±.15, 7.98±.18, 5.51±.14"),
    **_row("table1", "cifar100", 10000, "CIFAR100 row", TABLE1_METHODS,
           "48.26±.25, 46.91±.31, 46.34±.37, 44.38±.56, 43.92±.44, 47.87±.34, 46.98±.41, "
           "43.70±.19"),
    **_row("table2", "cifar10", 4000, "CIFAR10 row", TABLE2_METHODS,
           "14.72±.23, 14.34±.18, 14.15±.14, 13.94±.10"),
    **_row("table2", "cifar100", 10000, "CIFAR100 row", TABLE2_METHODS,
           "44.38±.56, 43.92±.44, 43.93±.33, 43.70±.19"),
    **_row("table3", "cifar10", 250, "250 column", MIXMATCH_METHODS, "14.49±1.60, 12.48±1.21"),
    **_row("table3", "cifar10", 4000, "4,000 column", MIXMATCH_METHODS, "7.05±0.10, 6.92±0.12"),
    **_row("table4", "svhn", 250, "250 column", MIXMATCH_METHODS, "3.75±0.09, 3.38±0.08"),
    **_row("table4", "svhn", 1000, "1,000 column", MIXMATCH_METHODS, "3.28±0.11, 3.14±0.11"),
    **_row("table5", "stl10", 1000, "1,000 column", MIXMATCH_METHODS, "22.20±0.89, 21.74±0.33"),
}  # fmt: skip
