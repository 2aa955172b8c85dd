"""Every results.json under a results root, as the paper's tables next to the published numbers.

    python -m scripts.report runs/paper [--out DIR]

Prints each table as Markdown: our mean ± std over the finished seeds of the paper's metric (test
error at the best validation error for Tables 1-2, the median of the last 20 test errors for
MixMatch), the paper's number, the difference and how many seeds finished. Unfinished runs (still
running, or cut off) are counted apart and never averaged. A run whose configuration differs from
the presets in anything but a Figure 3 grid value (a --scale run, the mini table's small network)
gets its own row, marked, with what differs. Writes runs.csv (every run) and figure3.png.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads (with the presets)

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts import figure3
from scripts.collect import RunResult, Summary, Variant, by_cell, cell_key, load, summarize
from scripts.tables import (
    GRID_KEYS,
    METRICS,
    PAPER,
    PAPER_COLUMNS,
    TABLES,
    Cell,
    Table,
    preset_values,
)

LENGTHS = {"realistic_ssl": "train_steps", "mixmatch": "train_kimg"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "stl10": "STL-10"}


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
    return text + (f" (+{summary.unfinished} unfinished)" if summary.unfinished else "")


def table_rows(table: Table, groups: dict) -> tuple[list[str], list[str]]:
    """Markdown rows of `table` and its footnotes; a cell without runs shows as not run."""
    rows, notes = [], []
    for cell in table.cells:
        published = PAPER.get((table.name, cell.dataset, cell.n_labeled, cell.method))
        variants = groups.get(cell_key(cell), {})
        if published or not variants:  # the paper's configuration first, "not run" if so
            variants = {(): []} | variants
        for variant in sorted(variants, key=lambda v: (v != (), str(v))):
            summary = summarize(variants[variant])
            name = PAPER_COLUMNS.get(cell.method, cell.method)
            if variant:
                label = variant_label(cell.stack, variant, cell.dataset, cell.n_labeled,
                                      cell.method)  # fmt: skip
                if label not in notes:
                    notes.append(label)
                name += f" [{_letter(notes.index(label))}]"
            ours = fmt(summary.mean, summary.std) if variants[variant] else "not run"
            paper = fmt(published.mean, published.std) if published else "–"
            diff = f"{summary.mean - published.mean:+.2f}" if published and summary.values else "–"
            data = f"{DATASET_NAMES.get(cell.dataset, cell.dataset)} / {cell.n_labeled:,}"
            rows.append(f"| {data} | {name} | {ours} | {paper} | {diff} | "
                        f"{seeds_cell(summary, len(table.seeds))} |")  # fmt: skip
    footnotes = [f"[{_letter(i)}] {label}" for i, label in enumerate(notes)]
    return rows, footnotes


def _letter(index: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[index % 26] + "'" * (index // 26)


def print_table(table: Table, groups: dict) -> None:
    rows, footnotes = table_rows(table, groups)
    print(f"\n### {table.title}\n")
    print("| data set / labels | method | ours | paper | ours − paper | seeds |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    if footnotes:
        print("\nRows marked [x] differ from the paper's configuration:")
        print("\n".join(f"- {note}" for note in footnotes))


def write_csv(runs: Sequence[RunResult], path: Path) -> None:
    """One row per results.json: the cell, seed, state, the paper's metric and every metric."""
    metric_names = sorted({name for run in runs for name in run.metrics})
    header = ["path", "stack", "dataset", "n_labeled", "method", "seed", *GRID_KEYS, "changed",
              "finished", "step", "metric", "value", *metric_names]  # fmt: skip
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for run in runs:
            grid = dict(run.grid)
            writer.writerow([
                run.path, run.stack, run.dataset, run.n_labeled, run.method, run.seed,
                *(grid.get(k, "") for k in GRID_KEYS),
                "; ".join(f"{k}={v}" for k, v in run.variant), run.finished, run.step,
                METRICS[run.stack], "" if run.value is None else run.value,
                *(run.metrics.get(name, "") for name in metric_names),
            ])  # fmt: skip


def report(root: Path, out: Path) -> None:
    """Prints every table with runs under `root`; writes runs.csv and figure3.png to `out`."""
    runs = load(root)
    groups = by_cell(runs)
    print(f"# Results under {root}: {len(runs)} runs, {sum(r.finished for r in runs)} finished")
    print(
        "\nours: mean ± sample std (n − 1) over the finished seeds; seeds: finished of expected, "
        "unfinished runs (running or cut off) counted apart and not averaged."
    )
    empty = []
    for table in TABLES.values():
        if not any(cell_key(cell) in groups for cell in table.cells):
            empty.append(table.name)
        elif table.name == "figure3":
            figure3.print_grids(table, groups)
        else:
            print_table(table, groups)
    known = {cell_key(cell) for table in TABLES.values() for cell in table.cells}
    others = [key for key in groups if key not in known]
    if others:
        seeds = tuple(sorted({run.seed for key in others for v in groups[key].values()
                              for run in v}))  # fmt: skip
        cells = tuple(Cell(*key) for key in sorted(others, key=str))
        print_table(Table("other", "Runs outside the paper's tables", cells, seeds), groups)
    if empty:
        print(f"\nNo runs yet for: {', '.join(empty)}.")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(runs, out / "runs.csv")
    print(f"\nEvery run: {out / 'runs.csv'}")
    if any(cell_key(cell) in groups for cell in TABLES["figure3"].cells):
        print(figure3.plot(TABLES["figure3"], groups, out / "figure3.png"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.report", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("root", type=Path, help="results root, e.g. runs/paper")
    parser.add_argument("--out", type=Path, help="where runs.csv and figure3.png go (the root)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root} is not a directory", file=sys.stderr)
        return 2
    report(args.root, args.out or args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
