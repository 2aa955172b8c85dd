"""The report against hand-made results.json files: means and sample stds computed by hand,
missing seeds and unfinished runs shown apart, shortened runs in rows of their own."""

import csv
import json
import sys

import pytest

from scripts import figure3, report, sweep
from scripts.tables import (
    FIXMATCH_ORIGINAL,
    ORIGINAL,
    PAPER,
    TABLES,
    TUNE_PRESETS,
    Table,
    tune_table,
)


def fake_run(root, table, logdir_part, seed, value, finished=True, scale=1.0):
    """A results.json as the train command writes it, for the sweep's run of `table` whose logdir
    ends in `<logdir_part>/seed<seed>` (its config resolved from the sweep's own command)."""
    runs = sweep.plan(TABLES[table], root, scale=scale)
    run = next(r for r in runs if str(r.logdir).endswith(f"{logdir_part}/seed{seed}"))
    config = sweep.resolved_config(run.argv).as_json()
    stack = run.argv[2].split(".")[0]
    metric = {"realistic_ssl": "test_error_at_best_valid", "mixmatch": "median_test_error_last20",
              "fixmatch": "median_test_error_last20"}  # fmt: skip
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
        fake_run(root, "table1", "cifar10@4000/pt/ns3l", seed, value)
    fake_run(root, "table1", "cifar10@4000/pt/ns3l", 4, 30.0, finished=False)  # cut off
    fake_run(root, "table1", "svhn@1000/pt/vat+ns3l", 1, 5.0)
    fake_run(root / "short", "table1", "cifar10@4000/pt/vat", 1, 30.0, scale=0.01)
    fake_run(root / "short", "table1", "cifar10@4000/pt/vat", 2, 31.0, scale=0.01)
    fake_run(root, "table4", "svhn@250/mixmatch", 1, 4.0)
    fake_run(root, "table4", "svhn@250/mixmatch", 2, 5.0)
    fake_run(root, "figure3", "cifar10@4000/pt/ns3l/T0.02-w0.3", 1, 17.0)
    fake_run(root, "figure3", "cifar10@4000/pt/ns3l/T0.02-w0.3", 2, 18.0)
    fake_run(root, "figure3", "cifar10@4000/pt/ns3l/w3", 1, 19.0, finished=False)
    older = (
        root / "cifar10@4000/pt/ns3l/seed3/results.json"
    )  # written before `deterministic` existed
    record = json.loads(older.read_text())
    del record["config"]["deterministic"]
    older.write_text(json.dumps(record))
    return root


def test_tables_against_hand_computed_values(results, tmp_path, capsys):
    report.report(results, tmp_path / "out")
    out = capsys.readouterr().out
    # (16.0, 16.4, 16.8): mean 16.4, sample std 0.4; seed 4 unfinished, seed 5 missing.
    # Columns: ours, NS3L paper, ours − NS3L, original paper, seeds.
    assert row(out, "| CIFAR-10 / 4,000 | NS3L |") == [
        "CIFAR-10 / 4,000", "NS3L", "16.40 ± 0.40", "16.03 ± 0.05", "+0.37", "–",
        "3/5 (+1 unfinished)",
    ]  # fmt: skip
    assert (
        "### Table 1: Oliver et al. protocol, test error % at best validation — protocol pt" in out
    )
    assert row(out, "| SVHN / 1,000 | VAT + NS3L |")[2:] == [
        "5.00", "5.51 ± 0.14", "-0.51", "–", "1/5",
    ]  # fmt: skip
    assert row(out, "| CIFAR-100 / 10,000 | PL |")[2:] == [
        "not run", "46.91 ± 0.31", "–", "–", "0/5",
    ]  # fmt: skip
    # The shortened runs: their own row, marked, never mixed into the paper's configuration.
    # NS3L's VAT 14.72 ± 0.23 against Oliver's 13.86 ± 0.27: 0.86 apart, over 2 × 0.27: a note.
    table1 = out[: out.index("### Table 2")]
    assert row(table1, "| CIFAR-10 / 4,000 | VAT (") == [
        "CIFAR-10 / 4,000", "VAT (1)", "not run", "14.72 ± 0.23", "–", "13.86 ± 0.27", "0/5",
    ]  # fmt: skip
    assert (
        "- (1) the papers disagree: NS3L 14.72, Oliver et al. 2018, Table 1 13.86 (+0.86, more "
        "than 2 std)\n" in table1
    )
    assert row(out, "| CIFAR-10 / 4,000 | VAT [a] |")[2:] == [
        "30.50 ± 0.71", "14.72 ± 0.23", "+15.78", "13.86 ± 0.27", "2/5",
    ]  # fmt: skip
    assert "[a] shortened ×0.01 (train_steps 2000 of 200000); eval_every=250, " in out
    # SVHN/250: NS3L's 3.75 ± 0.09 and the MixMatch paper's 3.78 ± 0.26 agree: no note.
    assert row(out, "| SVHN / 250 | MixMatch |")[2:] == [
        "4.50 ± 0.71", "3.75 ± 0.09", "+0.75", "3.78 ± 0.26", "2/5",
    ]  # fmt: skip
    # Table 2 shows the runs it shares with Table 1; tables without runs are only named.
    table2 = out[out.index("### Table 2") :]
    assert row(table2, "| CIFAR-10 / 4,000 | VAT + NS3L |")[2:] == [
        "not run", "13.94 ± 0.10", "–", "–", "0/5",
    ]  # fmt: skip
    assert "No runs yet for: table3, table5, demo, mini, table_fixmatch." in out
    assert (tmp_path / "out" / "report.md").read_text() in out


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
    point = next(r for r in rows if r["path"] == "cifar10@4000/pt/ns3l/T0.02-w0.3/seed2")
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
    fake_run(tmp_path, "table2", "cifar10@4000/pt/vat+pl", 1, 14.0)
    run = tmp_path / "cifar10@4000/pt/vat+pl/seed1/results.json"
    record = json.loads(run.read_text())
    record["config"]["dataset"] = record["dataset"] = "svhn"  # VAT+PL on SVHN: in no table
    record["config"]["n_valid"] = 7326
    record["config"]["vat_epsilon"] = 1.0
    run.write_text(json.dumps(record))
    report.report(tmp_path, tmp_path)
    out = capsys.readouterr().out
    other = out[out.index("### Runs outside the paper's tables") :]
    assert row(other, "| SVHN / 4,000 | VAT + PL |")[2:] == ["14.00", "–", "–", "–", "1/1"]


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


def test_fixmatch_rows_stand_beside_the_fixmatch_papers_table_2(tmp_path, capsys):
    for seed, value in [(1, 10.0), (2, 12.0), (3, 14.0)]:
        fake_run(tmp_path, "table_fixmatch", "cifar10@40/fixmatch", seed, value)
    fake_run(tmp_path, "table_fixmatch", "cifar10@40/fixmatch+ns3l", 1, 9.5)
    fake_run(tmp_path, "table_fixmatch", "svhn@40/fixmatch", 1, 4.0)
    report.report(tmp_path, tmp_path / "out")
    out = capsys.readouterr().out
    table = out[out.index("### FixMatch ± NS3L") :]
    # (10, 12, 14): mean 12, sample std 2; the CTA row's 11.39 ± 3.35, the abstract's 88.61%.
    assert row(table, "| CIFAR-10 / 40 | FixMatch (1) |")[2:] == [
        "12.00 ± 2.00", "–", "–", "11.39 ± 3.35", "3/5",
    ]  # fmt: skip
    assert "(1) FixMatch (RA) in the same table: 13.81 ± 3.37" in table
    assert row(table, "| CIFAR-10 / 40 | FixMatch + NS3L |")[2:] == [
        "9.50",
        "–",
        "–",
        "–",
        "1/5",
    ]  # fmt: skip  (new: no paper has it)
    svhn = row(table, "| SVHN / 40 | FixMatch (")
    assert svhn[2:4] == ["4.00", "–"] and svhn[5] == "7.65 ± 7.65"
    assert "one secondary transcription only (fixmatch spec §9)" in table
    assert "FixMatch (RA) in the same table: 3.96 ± 2.17, unverified" in table
    assert row(table, "| STL-10 / 1,000 | FixMatch (")[2:] == [
        "not run", "–", "–", "5.17 ± 0.63", "0/5",
    ]  # fmt: skip


def test_the_fixmatch_papers_numbers_by_augmentation():
    ra, cta = FIXMATCH_ORIGINAL["randaugment"], FIXMATCH_ORIGINAL["ctaugment"]
    assert len(ra) == len(cta) == 10
    assert (ra[("cifar10", 250)].mean, cta[("cifar10", 40)].mean) == (5.07, 11.39)  # abstract
    assert (ra[("stl10", 1000)].mean, cta[("stl10", 1000)].mean) == (7.98, 5.17)
    assert ra[("cifar100", 10000)].verified and not cta[("cifar100", 10000)].verified
    assert not any(table[("svhn", n)].verified for table in (ra, cta) for n in (40, 250, 1000))
    assert ORIGINAL[("cifar100", 400, "fixmatch")] is cta[("cifar100", 400)]  # our default


def test_mini_table_rows_are_the_small_runs_without_a_paper_row(tmp_path, capsys):
    for seed, value in [(1, 8.0), (2, 9.0), (3, 13.0)]:
        fake_run(tmp_path, "mini", "digits@50/pt/ns3l", seed, value)
    report.report(tmp_path, tmp_path)
    out = capsys.readouterr().out
    # (8, 9, 13): mean 10, sample std sqrt(((-2)^2 + (-1)^2 + 3^2) / 2) = sqrt(7) = 2.65.
    assert row(out, "| digits / 50 | NS3L [a] |")[2:] == ["10.00 ± 2.65", "–", "–", "–", "3/3"]
    assert "| digits / 50 | NS3L |" not in out  # no paper number, so no empty paper row
    assert row(out, "| digits / 50 | PL |")[2:] == ["not run", "–", "–", "–", "0/3"]
    assert "[a] shortened ×0.002 (train_steps 400 of 200000); bn_momentum=0.99" in out


def test_a_baseline_that_matches_the_original_paper_says_so(tmp_path, capsys):
    # MixMatch CIFAR-10/250: NS3L printed 14.49 ± 1.60, the MixMatch paper 11.08 ± 0.87.
    for seed, value in [(1, 10.5), (2, 11.5)]:
        fake_run(tmp_path, "table3", "cifar10@250/mixmatch", seed, value)
    fake_run(tmp_path, "table5", "stl10@1000/mixmatch", 1, 20.0)
    stl = tmp_path / "stl10@1000/mixmatch/seed1/results.json"
    record = json.loads(stl.read_text())
    record["split_rule"] = "stl10: official fold line 1 of /data/fold_indices.txt, mapped"
    stl.write_text(json.dumps(record))
    report.report(tmp_path, tmp_path / "out")
    out = capsys.readouterr().out
    table3 = out[out.index("### Table 3") : out.index("### Table 5")]
    assert row(table3, "| CIFAR-10 / 250 | MixMatch (1) |")[2:] == [
        "11.00 ± 0.71", "14.49 ± 1.60", "-3.49", "11.08 ± 0.87", "2/5",
    ]  # fmt: skip
    assert ("(1) the papers disagree: NS3L 14.49, MixMatch paper (Berthelot et al. 2019) 11.08 "
            "(+3.41, more than 2 std); ours (11.00) is nearer the MixMatch paper (Berthelot et "
            "al. 2019)'s") in table3  # fmt: skip
    table5 = out[out.index("### Table 5") :]
    assert "STL-10's length (16,384 kimg) is assumed" in table5
    assert "split: stl10: official fold line 1 of /data/fold_indices.txt, mapped" in table5
    with (tmp_path / "out" / "tables.csv").open() as f:
        rows = {
            (r["table"], r["dataset"], r["n_labeled"], r["method"]): r for r in csv.DictReader(f)
        }
    cifar = rows[("table3", "cifar10", "250", "mixmatch")]
    assert (cifar["ours_mean"], cifar["ns3l_paper_mean"], cifar["original_mean"]) == (
        "11.0", "14.49", "11.08",
    )  # fmt: skip
    assert cifar["seeds_finished"] == "2" and "papers disagree" in cifar["notes"]


def test_the_two_protocols_are_reported_apart_and_roots_merge(tmp_path, capsys):
    pt_root, tf_root = tmp_path / "cluster_a", tmp_path / "cluster_b"
    fake_run(pt_root, "table1", "cifar10@4000/pt/ns3l", 1, 16.0)
    runs = sweep.plan(TABLES["table1"], tf_root, protocol="tf")
    run = next(r for r in runs if str(r.logdir).endswith("cifar10@4000/tf/ns3l/seed1"))
    config = sweep.resolved_config(run.argv).as_json()
    record = {"stack": "realistic_ssl", "config": config, "seed": 1, "dataset": "cifar10",
              "method": "ns3l", "step": 200_000, "finished": True,
              "metrics": {"test_error_at_best_valid": 18.0}}  # fmt: skip
    run.logdir.mkdir(parents=True)
    (run.logdir / "results.json").write_text(json.dumps(record))
    report.report([pt_root, tf_root], tmp_path / "out")
    out = capsys.readouterr().out
    pt = out[out.index("— protocol pt") : out.index("— protocol tf")]
    tf_ = out[out.index("— protocol tf") :]
    assert row(pt, "| CIFAR-10 / 4,000 | NS3L |")[2] == "16.00"
    assert row(tf_, "| CIFAR-10 / 4,000 | NS3L |")[2] == "18.00"
    with (tmp_path / "out" / "runs.csv").open() as f:
        paths = {r["path"]: r["protocol"] for r in csv.DictReader(f)}
    assert paths == {"cluster_a/cifar10@4000/pt/ns3l/seed1": "pt",
                     "cluster_b/cifar10@4000/tf/ns3l/seed1": "tf"}  # fmt: skip


def test_tuning_picks_the_lowest_median_validation_error(tmp_path, capsys):
    table = tune_table(TUNE_PRESETS["vat+pl"])
    assert len(table.cells) == 2 * 9
    cells = [c for c in table.cells if c.dataset == "cifar10"]
    # (pl_weight, pl_threshold) -> validation errors of seeds 1-3, test error 20 + valid
    valid = {(0.3, 0.8): (15, 14, 20), (1.0, 0.9): (13, 16, 12), (3.0, 0.95): (12, 12, 30)}
    for cell in cells:
        point = {"pl_weight": 1.0, "pl_threshold": 0.95} | dict(cell.grid)
        key = (point["pl_weight"], point["pl_threshold"])
        for seed, error in enumerate(valid.get(key, ()), start=1):
            runs = sweep.plan(Table("t", "", (cell,), (seed,)), tmp_path)
            config = sweep.resolved_config(runs[0].argv).as_json()
            record = {"stack": "realistic_ssl", "config": config, "seed": seed,
                      "dataset": "cifar10", "method": "vat+pl", "step": 200_000,
                      "finished": True, "metrics": {"test_error_at_best_valid": 20.0 + error,
                                                    "best_valid_error": float(error)}}  # fmt: skip
            runs[0].logdir.mkdir(parents=True)
            (runs[0].logdir / "results.json").write_text(json.dumps(record))
    report.report(tmp_path, tmp_path / "out")
    out = capsys.readouterr().out
    tuning = out[out.index("### Tuning VAT + PL, CIFAR-10 / 4,000, protocol pt") :]
    assert row(tuning, "| pl_weight |") == ["pl_weight", "pl_threshold", "median valid error",
                                             "test error", "seeds"]  # fmt: skip
    # medians: 15, 13, 12 -> the last point, whose test errors are 32, 32, 50.
    assert row(tuning, "| 3 | 0.95 |")[2:] == ["12.00", "38.00 ± 10.39", "3"]
    assert row(tuning, "| 1 | 0.9 |")[2:] == ["13.00", "33.67 ± 2.08", "3"]
    assert "Pick (lowest median validation error): pl_weight3: valid 12.00, test 38.00" in tuning
    assert "Runs outside the paper's tables" not in out


def test_a_table_of_both_stacks_shows_its_mixmatch_rows_once(tmp_path, capsys):
    fake_run(tmp_path, "mini", "digits@50/pt/ns3l", 1, 8.0)
    fake_run(tmp_path, "mini", "digits@50/mixmatch", 1, 20.0)
    runs = sweep.plan(TABLES["mini"], tmp_path, protocol="tf")
    run = next(r for r in runs if str(r.logdir).endswith("digits@50/tf/ns3l/seed1"))
    config = sweep.resolved_config(run.argv).as_json()
    record = {"stack": "realistic_ssl", "config": config, "seed": 1, "dataset": "digits",
              "method": "ns3l", "step": 400, "finished": True,
              "metrics": {"test_error_at_best_valid": 6.0}}  # fmt: skip
    run.logdir.mkdir(parents=True)
    (run.logdir / "results.json").write_text(json.dumps(record))
    report.report(tmp_path, tmp_path / "out")
    out = capsys.readouterr().out
    assert out.count("| digits / 50 | MixMatch [b] |") == 1
    tf_ = out[out.index("— protocol tf") :]
    assert row(tf_, "| digits / 50 | NS3L [a] |")[2] == "6.00" and "MixMatch" not in tf_


def test_two_small_tables_sharing_a_cell_show_only_their_own_runs(tmp_path, capsys):
    # The demo and the mini table both have digits/50 NS3L, with different flags (1,000 steps
    # against 400). Each shows its own run; a run of neither goes under "Runs outside".
    fake_run(tmp_path / "mini", "mini", "digits@50/pt/ns3l", 1, 8.0)
    fake_run(tmp_path / "demo", "demo", "digits@50/pt/ns3l", 1, 6.0)
    fake_run(tmp_path / "demo", "demo", "digits@50/pt/supervised", 1, 10.0)
    own = tmp_path / "mine/digits@50/pt/ns3l/seed1/results.json"
    own.parent.mkdir(parents=True)
    record = json.loads((tmp_path / "demo/digits@50/pt/ns3l/seed1/results.json").read_text())
    record["config"]["train_steps"] = 2000
    own.write_text(json.dumps(record | {"metrics": {"test_error_at_best_valid": 5.0}}))
    report.report(tmp_path, tmp_path / "out")
    out = capsys.readouterr().out
    demo = out[out.index("### The README demo") : out.index("### Mini table")]
    mini = out[out.index("### Mini table") : out.index("### Runs outside")]
    other = out[out.index("### Runs outside") :]
    # Supervised has no ramp-up to shorten: its own note [a], NS3L's [b].
    assert row(demo, "| digits / 50 | NS3L [b] |")[2:] == ["6.00", "–", "–", "–", "1/1"]
    assert row(demo, "| digits / 50 | Supervised [a] |")[2] == "10.00"
    assert row(mini, "| digits / 50 | NS3L [a] |")[2:] == ["8.00", "–", "–", "–", "1/3"]
    assert row(mini, "| digits / 50 | Supervised |")[2] == "not run"
    assert row(other, "| digits / 50 | NS3L [a] |")[2:] == ["5.00", "–", "–", "–", "1/1"]
    assert "train_steps 2000 of 200000" in other and "8.00" not in other
