"""Figure 3 (NS3L §5): test error over the threshold T and the weight λ1, as Markdown grids and a
PNG with one panel per setting (NS3L and VAT + NS3L on CIFAR-10/4000, MixMatch + NS3L on
SVHN/250). The paper prints the figure only, so there is no published number to set beside ours.
"""

import math
from pathlib import Path

from .collect import RunResult, Summary, Variant, cell_key, summarize
from .tables import FIGURE3_KEYS, FIGURE3_PANELS, PAPER_COLUMNS, Cell, Table, preset_values

MATPLOTLIB = "matplotlib==3.11.2"  # the version checked to install and draw (docs/reproducing.md)


def point(cell: Cell) -> tuple[float, float]:
    """(T, λ1) of a grid cell: its own values over the presets'."""
    values = preset_values(cell.stack, cell.dataset, cell.n_labeled, cell.method, cell.protocol)
    values |= dict(cell.grid)
    threshold, weight = (values[key] for key in FIGURE3_KEYS)
    return threshold, weight


def panel_points(
    table: Table, panel: tuple, groups: dict
) -> dict[Variant, dict[tuple[float, float], list[RunResult]]]:
    """The panel's runs by variant, then by (T, λ1); every grid point of the panel appears."""
    stack, dataset, n_labeled, method = panel
    cells = [c for c in table.cells if (c.stack, c.dataset, c.n_labeled, c.method) == panel]
    variants = {v for c in cells for v in groups.get(cell_key(c), {})} or {()}
    return {
        variant: {point(c): groups.get(cell_key(c), {}).get(variant, []) for c in cells}
        for variant in sorted(variants, key=lambda v: (v != (), str(v)))
    }


def title(panel: tuple) -> str:
    stack, dataset, n_labeled, method = panel
    names = {"cifar10": "CIFAR-10", "svhn": "SVHN"}
    return f"{PAPER_COLUMNS[method]}, {names.get(dataset, dataset)} / {n_labeled:,}"


def print_grids(table: Table, groups: dict) -> None:
    """One Markdown grid per panel and variant: rows λ1, columns T, `mean ± std (n/5)`."""
    print(f"\n### {table.title}\n")
    print("Test error % (the tables' metric), mean ± std over finished seeds (finished/expected).")
    for panel in FIGURE3_PANELS:
        for variant, points in panel_points(table, panel, groups).items():
            changed = "; ".join(f"{k}={v}" for k, v in variant)
            print(f"\n#### {title(panel)}" + (f" (changed: {changed})" if changed else "") + "\n")
            thresholds = sorted({t for t, _ in points})
            weights = sorted({w for _, w in points})
            print("| λ1 \\ T | " + " | ".join(f"{t:g}" for t in thresholds) + " |")
            print("|---" * (len(thresholds) + 1) + "|")
            for w in weights:
                entries = [_entry(summarize(points.get((t, w), [])), len(table.seeds),
                                  (t, w) in points) for t in thresholds]  # fmt: skip
                print(f"| {w:g} | " + " | ".join(entries) + " |")


def _entry(summary: Summary, expected: int, on_grid: bool) -> str:
    if not on_grid:
        return ""
    mean = "–" if not summary.values else f"{summary.mean:.2f}"
    if len(summary.values) > 1:
        mean += f" ± {summary.std:.2f}"
    more = f", +{summary.unfinished} unfinished" if summary.unfinished else ""
    more += f", +{summary.diverged} diverged" if summary.diverged else ""
    return f"{mean} ({len(summary.values)}/{expected}{more})"


def plot(table: Table, groups: dict, path: Path) -> str:
    """Writes the three panels to `path` (one line per λ1, error bars: std over seeds); returns
    what it did, or why not (no matplotlib: the tables above are printed all the same)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a training machine
        import matplotlib.pyplot as plt
    except ImportError:
        return f"Figure 3 plot: not written, it needs matplotlib (pip install {MATPLOTLIB})"
    figure, axes = plt.subplots(1, len(FIGURE3_PANELS), figsize=(5 * len(FIGURE3_PANELS), 4))
    for ax, panel in zip(axes, FIGURE3_PANELS, strict=True):
        by_variant = panel_points(table, panel, groups)
        # The variant with the most finished runs; the paper's own configuration on a tie.
        variant = max(by_variant, key=lambda v: (_finished(by_variant[v]), v == ()))
        points = by_variant[variant]
        for w in sorted({w for _, w in points}):
            line = [(t, summarize(runs)) for (t, w2), runs in sorted(points.items()) if w2 == w]
            line = [(t, s) for t, s in line if s.values]
            if line:
                ax.errorbar([t for t, _ in line], [s.mean for _, s in line],
                            yerr=[0 if math.isnan(s.std) else s.std for _, s in line],
                            marker="o", capsize=3, label=f"λ1 = {w:g}")  # fmt: skip
        shortened = " (changed: " + ", ".join(f"{k}={v}" for k, v in variant) + ")"
        ax.set_title(title(panel) + (shortened if variant else ""), fontsize=9)
        ax.set_xlabel("threshold T")
        ax.set_ylabel("test error %")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no finished runs", ha="center", transform=ax.transAxes)
    figure.suptitle("Figure 3 (ours): test error over T, one line per λ1; mean ± std over seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"Figure 3 plot: {path}"


def _finished(points: dict) -> int:
    return sum(len(summarize(runs).values) for runs in points.values())
