"""The README's main job (scripts/demo.py): both stacks' runs, each row its paper's metric read
back from the run's results.json, and bad input in one line."""

import json

import pytest

from scripts import demo
from scripts.tables import DEMO_FLAGS, FIXMATCH, MINI_FLAGS, TABLES


def test_a_short_demo_runs_both_stacks_and_prints_each_papers_metric(tmp_path, capsys):
    demo.main(["--methods=fixmatch+ns3l,ns3l", "--steps=20", "--fixmatch_kimg=1",
               f"--logdir={tmp_path}"])  # fmt: skip
    out = capsys.readouterr().out
    # METHODS' order, whatever the order given: the Oliver stack first.
    assert out.index(f"== ns3l: {tmp_path}/pt/ns3l") < out.index(
        f"== fixmatch+ns3l: {tmp_path}/fixmatch/fixmatch+ns3l"
    )
    oliver = json.loads((tmp_path / "pt/ns3l/results.json").read_text())
    fixmatch = json.loads((tmp_path / "fixmatch/fixmatch+ns3l/results.json").read_text())
    assert oliver["step"] == 20 and fixmatch["step"] == 16  # 1 kimg of 64-image batches
    assert fixmatch["config"]["filters"] == 16 and fixmatch["config"]["deterministic"]
    assert fixmatch["sources"]["filters"] == "demo: fixmatch/demo.py"
    rows = {line.split(" | ")[0][2:]: line for line in out.splitlines() if line.startswith("| ")}
    metrics = oliver["metrics"]
    assert rows["ns3l"].startswith(
        f"| ns3l | {metrics['test_error_at_best_valid']:.1f} | at the best valid error "
        f"(step {metrics['best_step']}) | "
    )
    metrics = fixmatch["metrics"]
    assert rows["fixmatch+ns3l"].startswith(
        f"| fixmatch+ns3l | {metrics['median_test_error_last20']:.1f} | median of the last 20 "
        f"(last: {fixmatch['history'][-1]['test_error']:.1f}) | "
    )
    stacks = "Oliver et al. (pt): WRN-10-2, 20 steps; FixMatch: 16-filter ResNet, 16 iterations"
    assert stacks in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--methods=fixmatch,vat"], "--methods='vat': expected one of supervised, ns3l, "
                                     "vat+ns3l, fixmatch, fixmatch+ns3l"),
        (["--methods=,"], "--methods=',': expected one or more of supervised, ns3l"),
        (["--steps=0"], "--schedule_scale=0: expected a factor in (0, 1]"),
        (["--methods=fixmatch", "--fixmatch_kimg=0"], "--train_kimg=0"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        demo.main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_the_demo_sweep_runs_the_demos_five_runs_with_the_mini_tables_fixmatch_flags():
    table = TABLES["demo"]
    assert [cell.method for cell in table.cells] == list(demo.METHODS)
    assert DEMO_FLAGS[FIXMATCH] == MINI_FLAGS[FIXMATCH] | {"deterministic": True}
