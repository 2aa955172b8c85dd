"""The report against hand-made results.json files: means and sample stds computed by hand,
missing seeds and unfinished runs shown apart, shortened runs in rows of their own."""

import csv
import json
import sys

import pytest

from scripts import figure3, report, sweep
from scripts.tables import PAPER, TABLES


def fake_run(root, table, logdir_part, seed, value, finished=True, scale=1.0):
    """A results.json as the train command writes it, for the sweep's run of `table` whose logdir
    ends in `<logdir_part>/seed<seed>` (its config resolved from the sweep's own command)."""
    runs = sweep.plan(TABLES[table], root, scale=scale)
    run = next(r for r in runs if str(r.logdir).endswith(f"{logdir_part}/seed{seed}"))
    config = sweep.resolved_config(run.argv).as_json()
    stack = run.argv[2].split(".")[0]
    metric = {"realistic_ssl": "test_error_at_best_valid", "mixmatch": "median_test_error_last20"}
    record = {
        "stack": stack, "config": config, "seed": seed, "dataset": config["dataset"],
        "method": config["method"], "step": 1000, "finished": finished,
        "metrics": {metric[stack]: value, "final_test_error": value + 1.0},
    }  # fmt: skip
    run.logdir.mkdir(parents=True, exist_ok=True)
    (run.logdir / "results.json").write_text(json.dumps(record))


def row(out: str, start: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(start))
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "runs"
    for seed, value in [(1, 16.0), (2, 16.4), (3, 16.8)]:
        fake_run(root, "table1", "cifar10@4000/ns3l", seed, value)
    fake_run(root, "table1", "cifar10@4000/ns3l", 4, 30.0, finished=False)  # cut off
    fake_run(root, "table1", "svhn@1000/vat+ns3l", 1, 5.0)
    fake_run(root / "short", "table1", "cifar10@4000/vat", 1, 30.0, scale=0.01)
    fake_run(root / "short", "table1", "cifar10@4000/vat", 2, 31.0, scale=0.01)
    fake_run(root, "table4", "svhn@250/mixmatch", 1, 4.0)
    fake_run(root, "table4", "svhn@250/mixmatch", 2, 5.0)
    fake_run(root, "figure3", "cifar10@4000/ns3l/T0.02-w0.3", 1, 17.0)
    fake_run(root, "figure3", "cifar10@4000/ns3l/T0.02-w0.3", 2, 18.0)
    fake_run(root, "figure3", "cifar10@4000/ns3l/w3", 1, 19.0, finished=False)
    older = root / "cifar10@4000/ns3l/seed3/results.json"  # written before `deterministic` existed
    record = json.loads(older.read_text())
    del record["config"]["deterministic"]
    older.write_text(json.dumps(record))
    return root


def test_tables_against_hand_computed_values(results, tmp_path, capsys):
    report.report(results, tmp_path / "out")
    out = capsys.readouterr().out
    # (16.0, 16.4, 16.8): mean 16.4, sample std 0.4; seed 4 unfinished, seed 5 missing.
    assert row(out, "| CIFAR-10 / 4,000 | NS3L |") == [
        "CIFAR-10 / 4,000", "NS3L", "16.40 ± 0.40", "16.03 ± 0.05", "+0.37",
        "3/5 (+1 unfinished)",
    ]  # fmt: skip
    assert row(out, "| SVHN / 1,000 | VAT + NS3L |")[2:] == ["5.00", "5.51 ± 0.14", "-0.51", "1/5"]
    assert row(out, "| CIFAR-100 / 10,000 | PL |")[2:] == ["not run", "46.91 ± 0.31", "–", "0/5"]
    # The shortened runs: their own row, marked, never mixed into the paper's configuration.
    assert row(out, "| CIFAR-10 / 4,000 | VAT |")[2:] == ["not run", "14.72 ± 0.23", "–", "0/5"]
    assert row(out, "| CIFAR-10 / 4,000 | VAT [a] |")[2:] == [
        "30.50 ± 0.71", "14.72 ± 0.23", "+15.78", "2/5",
    ]  # fmt: skip
    assert "[a] shortened ×0.01 (train_steps 2000 of 200000); eval_every=50, " in out
    assert row(out, "| SVHN / 250 | MixMatch |")[2:] == ["4.50 ± 0.71", "3.75 ± 0.09", "+0.75",
                                                         "2/5"]  # fmt: skip
    # Table 2 shows the runs it shares with Table 1; tables without runs are only named.
    table2 = out[out.index("### Table 2") :]
    assert row(table2, "| CIFAR-10 / 4,000 | VAT + NS3L |")[2:] == [
        "not run", "13.94 ± 0.10", "–", "0/5",
    ]  # fmt: skip
    assert "No runs yet for: table3, table5, mini." in out


def test_figure3_grid_and_csv(results, tmp_path, capsys):
    report.report(results, tmp_path / "out")
    out = capsys.readouterr().out
    grid = out[out.index("#### NS3L, CIFAR-10 / 4,000") :]
    assert row(grid, "| λ1 \\ T |") == ["λ1 \\ T", "0.02", "0.04", "0.05", "0.08"]
    # λ1 0.3: (17, 18) at T 0.02; λ1 1 at T 0.04 is Table 1's NS3L run (3 finished + 1 cut off).
    assert row(grid, "| 0.3 |")[1:3] == ["17.50 ± 0.71 (2/5)", "– (0/5)"]
    assert row(grid, "| 1 |")[2] == "16.40 ± 0.40 (3/5, +1 unfinished)"
    assert row(grid, "| 3 |")[2] == "– (0/5, +1 unfinished)"
    with (tmp_path / "out" / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    short = [r for r in rows if r["path"].startswith("short/")]
    assert {r["value"] for r in short} == {"30.0", "31.0"} and "train_steps=2000" in short[0][
        "changed"
    ]
    point = next(r for r in rows if r["path"] == "cifar10@4000/ns3l/T0.02-w0.3/seed2")
    assert (point["ns3l_threshold"], point["ns3l_weight"], point["finished"]) == (
        "0.02", "0.3", "True",
    )  # fmt: skip
    assert point["metric"] == "test_error_at_best_valid" and point["final_test_error"] == "19.0"


def test_without_matplotlib_the_tables_still_print(results, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    report.report(results, tmp_path / "out")
    out = capsys.readouterr().out
    assert "Figure 3 plot: not written, it needs matplotlib (pip install matplotlib==" in out
    assert "| CIFAR-10 / 4,000 | NS3L |" in out and not (tmp_path / "out/figure3.png").exists()


def test_figure3_png(results, tmp_path):
    pytest.importorskip("matplotlib")
    groups = report.by_cell(report.load(results))
    message = figure3.plot(TABLES["figure3"], groups, tmp_path / "f.png")
    assert message == f"Figure 3 plot: {tmp_path / 'f.png'}"
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_outside_the_tables_are_listed(tmp_path, capsys):
    fake_run(tmp_path, "table2", "cifar10@4000/vat+pl", 1, 14.0)
    run = tmp_path / "cifar10@4000/vat+pl/seed1/results.json"
    record = json.loads(run.read_text())
    record["config"]["dataset"] = record["dataset"] = "svhn"  # VAT+PL on SVHN: in no table
    record["config"]["n_valid"] = 7326
    record["config"]["vat_epsilon"] = 1.0
    run.write_text(json.dumps(record))
    report.report(tmp_path, tmp_path)
    out = capsys.readouterr().out
    other = out[out.index("### Runs outside the paper's tables") :]
    assert row(other, "| SVHN / 4,000 | VAT + PL |")[2:] == ["14.00", "–", "–", "1/1"]


def test_published_numbers():
    assert len(PAPER) == 24 + 8 + 4 + 4 + 2
    svhn = PAPER[("table1", "svhn", 1000, "vat+ns3l")]
    assert (svhn.mean, svhn.std, svhn.where) == (5.51, 0.14, "Table 1, SVHN row, VAT + NS3L")
    assert PAPER[("table2", "cifar100", 10000, "vat+pl")].mean == 43.93
    table1, table2 = (PAPER[(t, "cifar10", 4000, "vat")] for t in ("table1", "table2"))
    assert (table1.mean, table1.std) == (table2.mean, table2.std) == (14.72, 0.23)
    stl = PAPER[("table5", "stl10", 1000, "mixmatch+ns3l")]
    assert (stl.mean, stl.std) == (21.74, 0.33)
    assert PAPER[("table3", "cifar10", 250, "mixmatch")].std == 1.60


def test_mini_table_rows_are_the_small_runs_without_a_paper_row(tmp_path, capsys):
    for seed, value in [(1, 8.0), (2, 9.0), (3, 13.0)]:
        fake_run(tmp_path, "mini", "digits@50/ns3l", seed, value)
    report.report(tmp_path, tmp_path)
    out = capsys.readouterr().out
    # (8, 9, 13): mean 10, sample std sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7) = 2.65.
    assert row(out, "| digits / 50 | NS3L [a] |")[2:] == ["10.00 ± 2.65", "–", "–", "3/3"]
    assert "| digits / 50 | NS3L |" not in out  # no paper number, so no empty paper row
    assert row(out, "| digits / 50 | PL |")[2:] == ["not run", "–", "–", "0/3"]
    assert "[a] shortened ×0.002 (train_steps 400 of 200000); bn_momentum=0.99" in out
