"""Which runs each paper table and Figure 3 need, and the numbers both papers published for them;
and FixMatch ± NS3L at the FixMatch paper's Table 2 cells, beside that paper's numbers.

A run is a cell (stack, data set, labels, method, protocol, grid point) at one seed; seeds 1-5 are
the paper's five labeled splits (NS3L §4.4). Tables share cells: Table 2's VAT, VAT + EntMin and
VAT + NS3L are Table 1's runs, and the Figure 3 point at a table's own values is that table's run,
so each run trains once and is reported wherever it appears. The Oliver stack's cells run in one
of its protocols (`--protocol`: pt, the paper's most likely one, or tf), and runs of the two live
apart. Hyperparameters are not repeated here: the commands resolve them from the stacks' presets
(docs/reproducing.md).
"""

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from fixmatch import demo as fixmatch_demo
from fixmatch import presets as fixmatch_presets
from mixmatch import presets as mixmatch_presets
from ns3l.errors import UsageError
from realistic_ssl import presets as realistic_presets

REALISTIC, MIXMATCH, FIXMATCH = "realistic_ssl", "mixmatch", "fixmatch"
PAPER_SEEDS = (1, 2, 3, 4, 5)  # NS3L §4.4: "5 splits ..., each with a different seed"
# The paper's number in each stack's results.json (NS3L §4.4; spec §3.5 and mixmatch spec §4).
# FixMatch's: the same median of the last 20 EMA test errors (fixmatch spec §7).
METRICS = {
    REALISTIC: "test_error_at_best_valid",
    MIXMATCH: "median_test_error_last20",
    FIXMATCH: "median_test_error_last20",
}
# The values a Figure 3 grid point changes; every other value stays at the preset (NS3L §5).
FIGURE3_KEYS = ("ns3l_threshold", "ns3l_weight")
# The hyperparameters a grid (Figure 3, scripts/tune.sh) may vary: a run that changes one of them
# is a grid point of its cell, a run that changes anything else a variant (e.g. --scale).
GRID_KEYS = (
    *FIGURE3_KEYS, "lr", "pl_weight", "pl_threshold", "vat_weight", "vat_epsilon", "em_weight",
    "pi_weight", "mt_weight", "w_match", "mixup_alpha",
)  # fmt: skip
DEFAULT_PROTOCOL = realistic_presets.DEFAULT_PROTOCOL

Grid = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Cell:
    """One (stack, data set, labels, method) of a table, at a grid point if `grid`; the Oliver
    stack's cells also name their protocol (`with_protocol`)."""

    stack: str
    dataset: str
    n_labeled: int
    method: str
    grid: Grid = ()  # only the values that differ from the preset, as (setting, value)
    protocol: str = ""  # the Oliver stack's --protocol; "" for MixMatch

    @property
    def path(self) -> str:
        """`cifar10@4000/pt/vat+ns3l`, for a grid point `cifar10@4000/pt/ns3l/T0.02-w0.3`, and
        `svhn@250/mixmatch` for MixMatch (no protocol)."""
        protocol = f"{self.protocol}/" if self.protocol else ""
        base = f"{self.dataset}@{self.n_labeled}/{protocol}{self.method}"
        return f"{base}/{grid_label(self.grid)}" if self.grid else base

    def with_protocol(self, protocol: str) -> "Cell":
        """This cell in the Oliver stack's `protocol`; a MixMatch cell is returned unchanged."""
        return dataclasses.replace(self, protocol=protocol) if self.stack == REALISTIC else self


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

    def flags_of(self, cell: "Cell") -> dict[str, object]:
        """The table's flags for `cell`'s stack, less the ramp-up a supervised run does not
        have (its train command refuses them)."""
        flags = dict(self.flags.get(cell.stack, {}))
        if cell.method == "supervised":
            flags = {k: v for k, v in flags.items() if k not in realistic_presets.RAMP_ONLY}
        return flags

    def with_protocol(self, protocol: str) -> "Table":
        """The table with its Oliver-stack cells in `protocol`."""
        cells = tuple(cell.with_protocol(protocol) for cell in self.cells)
        return dataclasses.replace(self, cells=cells)


def grid_label(grid: Grid) -> str:
    """`T0.02-w0.3` for Figure 3's values, `pl_weight3-pl_threshold0.9` for any other."""
    short = {"ns3l_threshold": "T", "ns3l_weight": "w"}
    return "-".join(f"{short.get(name, name)}{value:g}" for name, value in grid)


def preset_values(
    stack: str, dataset: str, n_labeled: int, method: str, protocol: str = ""
) -> dict[str, object]:
    """Every hyperparameter of the cell as its stack's presets resolve it, without flags (the
    Oliver stack's in `protocol`, by default the default one); `n_labeled` 0 takes the data
    set's preset."""
    given = {"n_labeled": n_labeled or None}  # 0: the data set's preset
    if stack == REALISTIC:
        settings = realistic_presets.resolve(method, dataset, given, protocol or DEFAULT_PROTOCOL)
    elif stack == FIXMATCH:
        settings = fixmatch_presets.resolve(method, dataset, given)
    else:
        settings = mixmatch_presets.resolve(method, dataset, given)
    return {name: setting.value for name, setting in settings.items()}


def cells(stack: str, datasets: tuple[tuple[str, int], ...], methods: tuple[str, ...]):
    return tuple(Cell(stack, d, n, m) for d, n in datasets for m in methods)


def grid_cells(
    stack: str, dataset: str, n_labeled: int, method: str,
    thresholds: tuple[float, ...], weights: tuple[float, ...],
) -> tuple[Cell, ...]:  # fmt: skip
    """One cell per (T, λ1); a value equal to the preset is left out, so the point at the table's
    own values is the table's run."""
    preset = preset_values(stack, dataset, n_labeled, method)  # T and λ1 are the same in both
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
FIXMATCH_METHODS = ("fixmatch", "fixmatch+ns3l")
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
# its λ_U ramp an eighth of the run (the paper's sixty-fourth would be 6 iterations). FixMatch
# in MixMatch's small network and length (no ramp to shorten; its cosine follows the length).
MINI_FLAGS = {
    REALISTIC: {
        "wrn_depth": 10, "wrn_width": 2, "bn_momentum": 0.99,
        "train_steps": 400, "lr_decay_steps": 260, "warmup_steps": 100, "eval_every": 40,
    },
    MIXMATCH: {
        "filters": 16, "repeat": 2, "bn_momentum": 0.99, "ema": 0.99,
        "train_kimg": 24, "warmup_kimg": 3, "report_kimg": 1,
    },
    FIXMATCH: fixmatch_demo.SMALL,
}  # fmt: skip

# The README demo (scripts/demo.py) as a sweep: its five runs, a smoke test for an executor (a
# Slurm cluster). The Oliver stack's schedule, the paper's scaled to 1,000 steps
# (realistic_ssl/demo.py); FixMatch's, the mini table's (fixmatch/demo.py).
DEMO_FLAGS = {
    REALISTIC: {"wrn_depth": 10, "wrn_width": 2, "train_steps": 1000, "lr_decay_steps": 650,
                "warmup_steps": 250, "eval_every": 100, "deterministic": True},
    FIXMATCH: fixmatch_demo.SMALL | {"deterministic": True},
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
            "demo", "The README demo's runs: digits, 50 labels, WRN-10-2 for 1,000 steps, "
            "FixMatch's small ResNet for 384 iterations (CPU)",
            cells(REALISTIC, (("digits", 50),), ("supervised", "ns3l", "vat+ns3l"))
            + cells(FIXMATCH, (("digits", 50),), FIXMATCH_METHODS),
            seeds=(1,), flags=DEMO_FLAGS, default_root="runs/demo-sweep",
        ),
        Table(
            "mini", "Mini table: digits, 50 labels, small networks, short schedules (CPU)",
            cells(REALISTIC, (("digits", 50),), TABLE1_METHODS)
            + cells(MIXMATCH, (("digits", 50),), MIXMATCH_METHODS)
            + cells(FIXMATCH, (("digits", 50),), FIXMATCH_METHODS),
            seeds=(1, 2, 3), flags=MINI_FLAGS, default_root="runs/mini",
        ),
        Table(
            "table_fixmatch",
            "FixMatch ± NS3L at the FixMatch paper's Table 2 cells (CTAugment), median of the "
            "last 20 test errors %",
            cells(FIXMATCH, fixmatch_presets.PAPER_CELLS, FIXMATCH_METHODS),
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Published:
    """A number as printed in the paper, and where: `Table 1, CIFAR10 row, VAT + NS3L`."""

    mean: float
    std: float
    where: str
    verified: bool = True  # False: one secondary transcription only (fixmatch spec §9)


# Column (and row) headers as the paper prints them; it spells one row "Mixmatch + NS3L".
PAPER_COLUMNS = {
    "supervised": "Supervised", "pl": "PL", "ns3l": "NS3L", "vat": "VAT",
    "vat+em": "VAT + EntMin", "pi": "Π model", "pi+ns3l": "Π + NS3L", "vat+ns3l": "VAT + NS3L",
    "vat+pl": "VAT + PL", "mixmatch": "MixMatch", "mixmatch+ns3l": "MixMatch + NS3L",
    "fixmatch": "FixMatch", "fixmatch+ns3l": "FixMatch + NS3L",
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


# The original papers' numbers for the same baselines (test error %, mean ± std over 5 splits):
# Oliver et al. 2018 Table 1 at 500,000 steps, as quoted in the [PT] README (realistic_ssl.md §6.2;
# no CIFAR-100, no NS3L), and the MixMatch paper's Tables 1-2 (Berthelot et al. 2019, as quoted
# in mixmatch.md §7). NS3L re-ran both with its own budget: where the two papers disagree, our
# number should be read against the protocol we ran, and the report says which is nearer.
OLIVER, MIXMATCH_PAPER = "Oliver et al. 2018, Table 1", "MixMatch paper (Berthelot et al. 2019)"
ORIGINAL: dict[tuple[str, int, str], Published] = {
    **{("cifar10", 4000, method): Published(mean, std, OLIVER) for method, mean, std in (
        ("supervised", 20.26, 0.38), ("pi", 16.37, 0.63), ("mt", 15.87, 0.28),
        ("vat", 13.86, 0.27), ("vat+em", 13.13, 0.39), ("pl", 17.78, 0.57))},
    **{("svhn", 1000, method): Published(mean, std, OLIVER) for method, mean, std in (
        ("supervised", 12.83, 0.47), ("pi", 7.19, 0.27), ("mt", 5.65, 0.47),
        ("vat", 5.63, 0.20), ("vat+em", 5.35, 0.19), ("pl", 7.62, 0.29))},
    **{(dataset, n, "mixmatch"): Published(mean, std, MIXMATCH_PAPER) for dataset, n, mean, std in (
        ("cifar10", 250, 11.08, 0.87), ("cifar10", 4000, 6.24, 0.06), ("svhn", 250, 3.78, 0.26),
        ("svhn", 1000, 3.27, 0.31), ("stl10", 1000, 10.18, 1.46))},
}  # fmt: skip

# FixMatch's Table 2 (Sohn et al. 2020; fixmatch spec §9), both rows: (RA, CTA) per cell. The
# spec verifies the RA rows of CIFAR-10 and CIFAR-100, CTA at CIFAR-10 / 40 (the abstract) and
# STL-10 in both rows; every other number (the CTA row, SVHN) has one secondary transcription.
FIXMATCH_PAPER = "FixMatch paper (Sohn et al. 2020), Table 2"
_FIXMATCH_TABLE2 = {
    ("cifar10", 40): ((13.81, 3.37, True), (11.39, 3.35, True)),
    ("cifar10", 250): ((5.07, 0.65, True), (5.07, 0.33, False)),
    ("cifar10", 4000): ((4.26, 0.05, True), (4.31, 0.15, False)),
    ("cifar100", 400): ((48.85, 1.75, True), (49.95, 3.01, False)),
    ("cifar100", 2500): ((28.29, 0.11, True), (28.64, 0.24, False)),
    ("cifar100", 10000): ((22.60, 0.12, True), (23.18, 0.11, False)),
    ("svhn", 40): ((3.96, 2.17, False), (7.65, 7.65, False)),
    ("svhn", 250): ((2.48, 0.38, False), (2.64, 0.64, False)),
    ("svhn", 1000): ((2.28, 0.11, False), (2.36, 0.19, False)),
    ("stl10", 1000): ((7.98, 1.50, True), (5.17, 0.63, True)),
}
# By the strong augmentation: our default (and the original code's) is CTAugment.
FIXMATCH_ORIGINAL: dict[str, dict[tuple[str, int], Published]] = {
    augment: {
        cell: Published(row[i][0], row[i][1], f"{FIXMATCH_PAPER}, FixMatch ({name})", row[i][2])
        for cell, row in _FIXMATCH_TABLE2.items()
    }
    for i, (augment, name) in enumerate((("randaugment", "RA"), ("ctaugment", "CTA")))
}
ORIGINAL |= {
    (dataset, n, "fixmatch"): published
    for (dataset, n), published in FIXMATCH_ORIGINAL["ctaugment"].items()
}
# What a report row of a data set must say besides its numbers.
ROW_NOTES = {
    ("mixmatch", "stl10"): "STL-10's length (16,384 kimg) is assumed: the paper trains "
    "'significantly' fewer epochs than MixMatch's 65,536 and gives no number",
}

# Named grids for scripts/tune.sh: (stack, data set, labels, method) -> the values per setting.
# VAT + PL (Table 2) has no published hyperparameters; the paper says they were tuned to the
# lowest validation error. PL's weight around [TF]'s 1.0 in the ~3x steps of Figure 3, and its
# confidence threshold from [TF]'s 0.95 down to where VAT's sharp predictions still pass it.
Space = tuple[tuple[str, str, int, str], dict[str, tuple[float, ...]]]  # cell, values per setting
TUNE_PRESETS: dict[str, tuple[Space, ...]] = {
    "vat+pl": tuple(
        ((REALISTIC, dataset, n, "vat+pl"), {"pl_weight": (0.3, 1.0, 3.0),
                                             "pl_threshold": (0.8, 0.9, 0.95)})
        for dataset, n in (("cifar10", 4000), ("svhn", 1000))
    ),
}  # fmt: skip


def tune_table(spaces: tuple[Space, ...], seeds: tuple[int, ...] = PAPER_SEEDS) -> Table:
    """The runs of a tuning sweep: every point of each grid (a value equal to the preset is left
    out of the point, so the preset's own point is the table run)."""
    cells = []
    for (stack, dataset, n_labeled, method), space in spaces:
        preset = preset_values(stack, dataset, n_labeled, method)
        unknown = [name for name in space if name not in GRID_KEYS or name not in preset]
        if unknown:
            raise UsageError(
                f"--grid {unknown[0]}: expected a setting of {method} among {', '.join(GRID_KEYS)}"
            )
        for values in itertools.product(*space.values()):
            point = dict(zip(space, values, strict=True))
            grid = tuple((k, float(v)) for k, v in point.items() if v != preset[k])
            cells.append(Cell(stack, dataset, n_labeled, method, grid))
    return Table("tune", "Tuning: validation error over a grid", tuple(cells), seeds,
                 default_root="runs/tune")  # fmt: skip
