"""Every results.json under one or more results roots, as the paper's tables beside both papers.

    python -m scripts.report runs/paper [more roots ...] [--out DIR]

Prints each table as Markdown: our mean ± std over the finished seeds of the paper's metric (test
error at the best validation error for Tables 1-2, the median of the last 20 test errors for
MixMatch), the NS3L paper's number, the difference, the original paper's number for the same
baseline (Oliver et al. 2018; the MixMatch paper), and how many seeds finished. Where the two
papers disagree by more than twice the larger of their stds, a note says so and which one ours is
nearer: NS3L re-ran its baselines with its own budget. The Oliver stack's tables come once per
protocol that has runs (pt, tf), never mixed. Unfinished runs (still running, or cut off) are
counted apart and never averaged. A run whose configuration differs from the presets in anything
but a grid value (a --scale run, the mini table's small network) gets its own row, marked, with
what differs. Tuning grids (scripts/tune.sh) get a section that picks the point with the lowest
median validation error. Writes report.md (what is printed), tables.csv (every row), runs.csv
(every run) and figure3.png to --out (default: the first root).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads (with the presets)
# TensorFlow's C++ lines filtered when run as a command, as the trainers do (ns3l/__init__.py).
if __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("ns3l-"):
    os.environ["NS3L_NATIVE_LOGS"] = "filter"

import argparse
import contextlib
import csv
import dataclasses
import io
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import figure3
from .collect import (
    RunResult,
    Summary,
    Variant,
    by_cell,
    cell_key,
    deviation_of,
    expected_config,
    load,
    summarize,
)
from .tables import (
    DEFAULT_PROTOCOL,
    FIXMATCH,
    FIXMATCH_ORIGINAL,
    GRID_KEYS,
    METRICS,
    ORIGINAL,
    PAPER,
    PAPER_COLUMNS,
    REALISTIC,
    ROW_NOTES,
    TABLES,
    Cell,
    Published,
    Table,
    grid_label,
    preset_values,
)

LENGTHS = {"realistic_ssl": "train_steps", "mixmatch": "train_kimg", "fixmatch": "train_kimg"}
UNVERIFIED = (
    "the original paper's number here has one secondary transcription only (fixmatch spec §9): "
    "re-check it against the paper before quoting"
)
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "stl10": "STL-10"}
TABLE_FIELDS = (
    "table", "protocol", "dataset", "n_labeled", "method", "changed", "ours_mean", "ours_std",
    "seeds_finished", "seeds_expected", "unfinished", "ns3l_paper_mean", "ns3l_paper_std",
    "original_mean", "original_std", "original_source", "notes",
)  # fmt: skip


@dataclass
class Row:
    """One table row: a cell in one variant, its summary and both papers' numbers."""

    table: Table
    cell: Cell
    variant: Variant
    summary: Summary
    ran: bool
    published: Published | None
    original: Published | None
    notes: list[str]

    def csv(self) -> dict:
        def pair(p: Published | None) -> tuple:
            return ("", "") if p is None else (p.mean, p.std)

        return dict(zip(TABLE_FIELDS, (
            self.table.name, self.cell.protocol, self.cell.dataset, self.cell.n_labeled,
            self.cell.method, "; ".join(f"{k}={v}" for k, v in self.variant),
            _number(self.summary.mean), _number(self.summary.std), len(self.summary.values),
            len(self.table.seeds), self.summary.unfinished, *pair(self.published),
            *pair(self.original), self.original.where if self.original else "",
            " | ".join(self.notes),
        ), strict=True))  # fmt: skip


def _number(value: float) -> float | str:
    return "" if math.isnan(value) else round(value, 4)


def variant_label(stack: str, variant: Variant, dataset: str, n_labeled: int, method: str) -> str:
    """`shortened ×0.01 (train_steps 2000 of 200000); also wrn_depth=10`: how a run differs."""
    changed = dict(variant)
    length = LENGTHS[stack]
    parts = []
    if length in changed:
        preset = preset_values(stack, dataset, n_labeled, method)[length]
        ratio = changed[length] / preset
        parts.append(f"{'shortened' if ratio < 1 else 'lengthened'} ×{ratio:.3g} "
                     f"({length} {changed.pop(length)} of {preset})")  # fmt: skip
    if changed:
        parts.append(", ".join(f"{k}={v}" for k, v in changed.items()))
    return "; ".join(parts)


def fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def seeds_cell(summary: Summary, expected: int) -> str:
    text = f"{len(summary.values)}/{expected}"
    more = [f"+{n} {what}" for n, what in ((summary.unfinished, "unfinished"),
                                             (summary.diverged, "diverged")) if n]  # fmt: skip
    return text + (f" ({', '.join(more)})" if more else "")


def papers_note(published: Published, original: Published, summary: Summary) -> str | None:
    """A note when NS3L's baseline and the original paper's differ by more than twice the larger
    of their stds, saying which one ours is nearer; None when they agree."""
    gap = published.mean - original.mean
    if abs(gap) <= 2 * max(published.std, original.std):
        return None
    note = (f"the papers disagree: NS3L {published.mean:.2f}, {original.where} "
            f"{original.mean:.2f} ({gap:+.2f}, more than 2 std)")  # fmt: skip
    if summary.values:
        nearer = min((published, original), key=lambda p: abs(summary.mean - p.mean))
        name = "NS3L's" if nearer is published else f"the {original.where}'s"
        note += f"; ours ({summary.mean:.2f}) is nearer {name}"
    return note


def own_variant(table: Table, cell: Cell) -> Variant | None:
    """The variant every run of a table with its own flags (the mini and demo tables) has in
    `cell`; None for a paper table, which shows each variant of its cells."""
    if not table.flags.get(cell.stack):
        return None
    flags = table.flags_of(cell)
    expected = expected_config(cell.stack, cell.dataset, cell.n_labeled, cell.method,
                               cell.protocol)  # fmt: skip
    return tuple((k, v) for k, v in deviation_of(dict(flags), expected) if k not in GRID_KEYS)


def shown_variants(table: Table, cell: Cell, groups: dict) -> dict[Variant, list[RunResult]]:
    """The variants of `cell` that `table` shows: all of them in a paper table; in a table with
    its own flags only its own runs, so that two small tables sharing a cell (mini, demo) do not
    show each other's runs."""
    variants = groups.get(cell_key(cell), {})
    own = own_variant(table, cell)
    return dict(variants) if own is None else {v: r for v, r in variants.items() if v == own}


def table_rows(table: Table, groups: dict) -> list[Row]:
    """The rows of `table` (whose Oliver cells carry a protocol); a cell without runs shows as
    not run."""
    rows = []
    for cell in table.cells:
        published = PAPER.get((table.name, cell.dataset, cell.n_labeled, cell.method))
        original = ORIGINAL.get((cell.dataset, cell.n_labeled, cell.method))
        variants = shown_variants(table, cell, groups)
        if published or not variants:  # the paper's configuration first, "not run" if so
            variants = {(): []} | variants
        for variant in sorted(variants, key=lambda v: (v != (), str(v))):
            runs = variants[variant]
            summary = summarize(runs)
            notes = []
            if published and original and not variant:
                notes += [note] if (note := papers_note(published, original, summary)) else []
            if cell.stack == FIXMATCH:
                original, more = fixmatch_original(cell, variant)
                notes += more
            if note := ROW_NOTES.get((cell.stack, cell.dataset)):
                notes.append(note)
            rules = sorted({run.split_rule for run in runs if run.split_rule})
            if cell.dataset == "stl10" and rules:
                notes.append("split: " + "; ".join(rules))
            rows.append(Row(table, cell, variant, summary, bool(runs), published, original,
                            notes))  # fmt: skip
    return rows


def fixmatch_original(cell: Cell, variant: Variant) -> tuple[Published | None, list[str]]:
    """The FixMatch paper's number for a FixMatch row in its strong augmentation (CTAugment,
    unless the runs changed --augment), and the row's notes: the paper's other augmentation's
    number, and whether the number shown is unverified."""
    if cell.method != "fixmatch":
        return None, []
    augment = dict(variant).get("augment", "ctaugment")
    other = "ctaugment" if augment == "randaugment" else "randaugment"
    mine = FIXMATCH_ORIGINAL[augment].get((cell.dataset, cell.n_labeled))
    theirs = FIXMATCH_ORIGINAL[other].get((cell.dataset, cell.n_labeled))
    notes = [UNVERIFIED] if mine and not mine.verified else []
    if theirs:
        flag = "" if theirs.verified else ", unverified"
        notes.append(f"{theirs.where.split(', ')[-1]} in the same table: "
                     f"{fmt(theirs.mean, theirs.std)}{flag}")  # fmt: skip
    return mine, notes


def print_table(table: Table, groups: dict, csv_rows: list[dict]) -> None:
    rows = table_rows(table, groups)
    variants, notes = [], []
    print(f"\n### {table.title}\n")
    print(
        "| data set / labels | method | ours | NS3L paper | ours − NS3L | original paper | seeds |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        cell, summary, published, original = row.cell, row.summary, row.published, row.original
        name = PAPER_COLUMNS.get(cell.method, cell.method)
        if row.variant:
            label = variant_label(cell.stack, row.variant, cell.dataset, cell.n_labeled,
                                  cell.method)  # fmt: skip
            if label not in variants:
                variants.append(label)
            name += f" [{_letter(variants.index(label))}]"
        for note in row.notes:
            if note not in notes:
                notes.append(note)
            name += f" ({notes.index(note) + 1})"
        ours = fmt(summary.mean, summary.std) if row.ran else "not run"
        paper = fmt(published.mean, published.std) if published else "–"
        diff = f"{summary.mean - published.mean:+.2f}" if published and summary.values else "–"
        first = fmt(original.mean, original.std) if original else "–"
        data = f"{DATASET_NAMES.get(cell.dataset, cell.dataset)} / {cell.n_labeled:,}"
        print(f"| {data} | {name} | {ours} | {paper} | {diff} | {first} | "
              f"{seeds_cell(summary, len(table.seeds))} |")  # fmt: skip
        csv_rows.append(row.csv())
    if variants:
        print("\nRows marked [x] differ from the paper's configuration:")
        print("\n".join(f"- [{_letter(i)}] {label}" for i, label in enumerate(variants)))
    if notes:
        print("\nNotes:")
        print("\n".join(f"- ({i + 1}) {note}" for i, note in enumerate(notes)))


def _letter(index: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[index % 26] + "'" * (index // 26)


def tuning_groups(groups: dict) -> dict[tuple, dict[tuple, dict[Variant, list[RunResult]]]]:
    """Grid cells outside Figure 3, by (stack, dataset, labels, method, protocol), then grid;
    the cell's preset point (no grid) joins each such group."""
    figure3_cells = {cell_key(c.with_protocol(p)) for c in TABLES["figure3"].cells
                     for p in ("pt", "tf")}  # fmt: skip
    tuned = {}
    for key in groups:
        stack, dataset, n_labeled, method, grid, protocol = key
        if grid and key not in figure3_cells:
            tuned.setdefault((stack, dataset, n_labeled, method, protocol), {})
    for base, points in tuned.items():
        for key, variants in groups.items():
            if (*key[:4], key[5]) == base:
                points[key[4]] = variants
    return tuned


def print_tuning(groups: dict) -> None:
    """Per tuned cell and variant (a --scale sweep is one): every grid point's median
    validation error and test error over the finished seeds, and the pick, the point with the
    lowest median validation error."""
    for (stack, dataset, n_labeled, method, protocol), points in tuning_groups(groups).items():
        keys = sorted({k for grid in points for k, _ in grid}, key=GRID_KEYS.index)
        preset = preset_values(stack, dataset, n_labeled, method, protocol)
        where = f"{DATASET_NAMES.get(dataset, dataset)} / {n_labeled:,}"
        protocol_text = f", protocol {protocol}" if protocol else ""
        variants = sorted({v for by_variant in points.values() for v in by_variant}, key=str)
        for variant in variants:
            label = variant_label(stack, variant, dataset, n_labeled, method) if variant else ""
            changed = f" ({label})" if label else ""
            name = PAPER_COLUMNS.get(method, method)
            print(f"\n### Tuning {name}, {where}{protocol_text}{changed}\n")
            _tuning_table(points, variant, keys, preset)


def _tuning_table(points: dict, variant: Variant, keys: list[str], preset: dict) -> None:
    print("| " + " | ".join(keys) + " | median valid error | test error | seeds |")
    print("|---" * (len(keys) + 3) + "|")
    best = None
    for grid in sorted(points, key=lambda g: [dict(g).get(k, preset[k]) for k in keys]):
        runs = points[grid].get(variant, [])
        finished = [run for run in runs if run.finished and run.valid is not None]
        median = statistics.median(r.valid for r in finished) if finished else math.nan
        summary = summarize(runs)
        values = [f"{dict(grid).get(k, preset[k]):g}" for k in keys]
        seeds = f"{len(finished)}" + (f" (+{summary.diverged} diverged)"
                                      if summary.diverged else "")  # fmt: skip
        print("| " + " | ".join(values) + f" | {fmt(median, math.nan)} | "
              f"{fmt(summary.mean, summary.std)} | {seeds} |")  # fmt: skip
        if finished and (best is None or median < best[0]):
            best = (median, grid, summary)
    if best:
        median, grid, summary = best
        label = grid_label(grid) or "the preset"
        print(f"\nPick (lowest median validation error): {label}: valid {median:.2f}, "
              f"test {fmt(summary.mean, summary.std)}")  # fmt: skip


def write_csv(runs: Sequence[RunResult], path: Path) -> None:
    """One row per results.json: the cell, seed, state, the paper's metric and every metric."""
    metric_names = sorted({name for run in runs for name in run.metrics})
    header = ["path", "stack", "dataset", "n_labeled", "method", "protocol", "seed", *GRID_KEYS,
              "changed", "finished", "step", "metric", "value", "split_rule",
              *metric_names]  # fmt: skip
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for run in runs:
            grid = dict(run.grid)
            writer.writerow([
                run.path, run.stack, run.dataset, run.n_labeled, run.method, run.protocol,
                run.seed, *(grid.get(k, "") for k in GRID_KEYS),
                "; ".join(f"{k}={v}" for k, v in run.variant), run.finished, run.step,
                METRICS[run.stack], "" if run.value is None else run.value, run.split_rule,
                *(run.metrics.get(name, "") for name in metric_names),
            ])  # fmt: skip


def tables_to_print(runs: Sequence[RunResult]) -> list[Table]:
    """Every table, the Oliver stack's once per protocol with runs (the default one if none); a
    table mixing both stacks (the mini table) shows its MixMatch rows in the first copy only."""
    protocols = sorted({run.protocol for run in runs if run.stack == REALISTIC and run.protocol})
    tables = []
    for table in TABLES.values():
        if any(cell.stack == REALISTIC for cell in table.cells):
            for i, protocol in enumerate(protocols or [DEFAULT_PROTOCOL]):
                cells = [c.with_protocol(protocol) for c in table.cells
                         if i == 0 or c.stack == REALISTIC]  # fmt: skip
                title = f"{table.title} — protocol {protocol}"
                tables.append(dataclasses.replace(table, title=title, cells=tuple(cells)))
        else:
            tables.append(table)
    return tables


def report(roots: Sequence[Path] | Path, out: Path) -> list[str]:
    """Prints every table with runs under `roots`; writes report.md, tables.csv, runs.csv and
    figure3.png to `out`. Returns the problems it skipped (damaged results.json files, runs
    without one), each also printed in one line."""
    roots = [roots] if isinstance(roots, Path) else list(roots)
    problems: list[str] = []
    runs = [run for root in roots for run in load(root, len(roots) > 1, problems)]
    groups = by_cell(runs)
    out.mkdir(parents=True, exist_ok=True)
    text, csv_rows = io.StringIO(), []
    with contextlib.redirect_stdout(text):
        _report(roots, runs, groups, out, csv_rows, problems)
    print(text.getvalue(), end="")
    (out / "report.md").write_text(text.getvalue())
    with (out / "tables.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, TABLE_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows)
    print(f"This report: {out / 'report.md'}; every row: {out / 'tables.csv'}")
    return problems


def _report(
    roots: list[Path], runs: list, groups: dict, out: Path, csv_rows: list, problems: list[str]
) -> None:
    where = ", ".join(map(str, roots))
    diverged = sum(r.diverged for r in runs)
    print(f"# Results under {where}: {len(runs)} runs, {sum(r.finished for r in runs)} finished"
          + (f", {diverged} diverged" if diverged else "")
          + (f", {len(problems)} skipped" if problems else ""))  # fmt: skip
    for problem in problems:
        print(f"- skipped: {problem}")
    print(
        "\nours: mean ± sample std (n − 1) over the finished seeds; seeds: finished of expected, "
        "unfinished runs (running or cut off) counted apart and not averaged; original paper: "
        "Oliver et al. 2018 (500,000 steps) or the MixMatch paper, for the same baseline."
    )
    tables, shown, with_runs = tables_to_print(runs), set(), set()
    for table in tables:
        own = {(cell_key(c), v) for c in table.cells for v in shown_variants(table, c, groups)}
        shown |= own
        if not own:
            continue
        with_runs.add(table.name)
        if table.name == "figure3":
            figure3.print_grids(table, groups)
        else:
            print_table(table, groups, csv_rows)
    tuned = tuning_groups(groups)
    if tuned:
        print_tuning(groups)
    tuned_keys = {k for k in groups if (*k[:4], k[5]) in tuned}
    others = {key: {v: r for v, r in variants.items() if (key, v) not in shown}
              for key, variants in groups.items() if key not in tuned_keys}  # fmt: skip
    others = {key: variants for key, variants in others.items() if variants}
    if others:
        seeds = tuple(sorted({run.seed for variants in others.values() for v in variants.values()
                              for run in v}))  # fmt: skip
        cells = tuple(Cell(*key) for key in sorted(others, key=str))
        print_table(Table("other", "Runs outside the paper's tables", cells, seeds), others,
                    csv_rows)  # fmt: skip
    empty = [name for name in dict.fromkeys(t.name for t in tables) if name not in with_runs]
    if empty:
        print(f"\nNo runs yet for: {', '.join(empty)}.")
    write_csv(runs, out / "runs.csv")
    print(f"\nEvery run: {out / 'runs.csv'}")
    for table in tables:  # the plot shows the first protocol with runs
        if table.name == "figure3" and any(cell_key(c) in groups for c in table.cells):
            print(figure3.plot(table, groups, out / "figure3.png"))
            break


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.report", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "roots", type=Path, nargs="+", help="results roots, e.g. runs/paper (several merge)"
    )
    parser.add_argument(
        "--out", type=Path, help="where report.md, tables.csv, runs.csv and figure3.png go "
        "(default: the first root)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for root in args.roots:
        if not root.is_dir():
            print(f"error: {root} is not a directory", file=sys.stderr)
            return 2
    problems = report(args.roots, args.out or args.roots[0])
    if problems:
        print(f"error: {len(problems)} results skipped (listed at the top)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
