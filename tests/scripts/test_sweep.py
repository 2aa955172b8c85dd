"""The sweeps' commands (cells, seeds, presets resolved per data set, --scale), skipping finished
runs, resuming cut-off ones, and refusing directories that hold another configuration."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from realistic_ssl import presets as realistic_presets
from scripts import sweep
from scripts.tables import TABLE1_METHODS, TABLES, Cell, Table

ROOT = Path(__file__).parents[2]
IDENTITY_FLAGS = ("--method", "--dataset", "--n_labeled", "--seed", "--logdir")
PROTOCOL_FLAGS = (*IDENTITY_FLAGS, "--protocol")  # the Oliver stack's commands


def flags(argv) -> dict[str, str]:
    """--name=value as {name: value}; a bare --name as {name: ""}."""
    return dict((arg[2:].split("=", 1) + [""])[:2] for arg in argv if arg.startswith("--"))


def runs_of(table: str, root: Path = Path("R"), **options) -> list[sweep.Run]:
    return sweep.plan(TABLES[table], root, python="python", **options)


def test_table1_is_every_method_on_every_data_set_at_seeds_1_to_5():
    runs = runs_of("table1")
    assert len(runs) == 8 * 3 * 5
    cells = {(flags(r.argv)["dataset"], flags(r.argv)["n_labeled"], flags(r.argv)["method"])
             for r in runs}  # fmt: skip
    datasets = {("cifar10", "4000"), ("svhn", "1000"), ("cifar100", "10000")}
    assert cells == {(d, n, m) for d, n in datasets for m in TABLE1_METHODS}
    assert sorted({r.seed for r in runs}) == [1, 2, 3, 4, 5]
    first = runs[0]
    assert first.argv[:3] == ("python", "-m", "realistic_ssl.train")
    assert first.argv[3:] == (
        "--method=supervised", "--dataset=cifar10", "--n_labeled=4000", "--seed=1",
        "--logdir=R/cifar10@4000/pt/supervised/seed1", "--protocol=pt",
    )  # fmt: skip


def test_the_tf_protocol_runs_in_directories_of_its_own():
    pt, tf_ = runs_of("table1"), runs_of("table1", protocol="tf")
    assert {flags(r.argv)["protocol"] for r in tf_} == {"tf"}
    assert not {r.logdir for r in pt} & {r.logdir for r in tf_}
    assert str(tf_[0].logdir) == "R/cifar10@4000/tf/supervised/seed1"
    assert sweep.resolved_config(tf_[0].argv).value("split_rule") == "tf"
    # MixMatch has no protocol: the same runs whatever is asked.
    assert [r.argv for r in runs_of("table4")] == [r.argv for r in runs_of("table4", protocol="tf")]


@pytest.mark.parametrize(
    "table", ["table1", "table2", "table3", "table4", "table5", "table_fixmatch"]
)
def test_paper_commands_pass_no_hyperparameter(table):
    for run in runs_of(table):
        want = PROTOCOL_FLAGS if run.argv[2] == "realistic_ssl.train" else IDENTITY_FLAGS
        assert {f"--{name}" for name in flags(run.argv)} == set(want), run.argv


def test_table2_and_the_mixmatch_tables():
    table2 = {(flags(r.argv)["dataset"], flags(r.argv)["method"]) for r in runs_of("table2")}
    assert table2 == {(d, m) for d in ("cifar10", "cifar100")
                      for m in ("vat", "vat+em", "vat+pl", "vat+ns3l")}  # fmt: skip
    for table, want in [
        ("table3", {("cifar10", "250"), ("cifar10", "4000")}),
        ("table4", {("svhn", "250"), ("svhn", "1000")}),
        ("table5", {("stl10", "1000")}),
    ]:
        runs = runs_of(table)
        assert len(runs) == len(want) * 2 * 5
        assert {r.argv[2] for r in runs} == {"mixmatch.train"}
        assert {(flags(r.argv)["dataset"], flags(r.argv)["n_labeled"]) for r in runs} == want
        assert {flags(r.argv)["method"] for r in runs} == {"mixmatch", "mixmatch+ns3l"}


def test_the_fixmatch_table_is_its_papers_ten_cells_at_seeds_1_to_5():
    runs = runs_of("table_fixmatch")
    assert len(runs) == 10 * 2 * 5 and {r.argv[2] for r in runs} == {"fixmatch.train"}
    cells = {(flags(r.argv)["dataset"], int(flags(r.argv)["n_labeled"])) for r in runs}
    assert cells == {("cifar10", 40), ("cifar10", 250), ("cifar10", 4000), ("cifar100", 400),
                     ("cifar100", 2500), ("cifar100", 10000), ("svhn", 40), ("svhn", 250),
                     ("svhn", 1000), ("stl10", 1000)}  # fmt: skip
    assert {flags(r.argv)["method"] for r in runs} == {"fixmatch", "fixmatch+ns3l"}
    assert {int(flags(r.argv)["seed"]) for r in runs} == {1, 2, 3, 4, 5}
    cifar100 = next(r for r in runs if flags(r.argv)["dataset"] == "cifar100")
    config = sweep.resolved_config(cifar100.argv)
    assert (config.value("filters"), config.value("wd")) == (128, 1e-3)  # from the presets


def test_table2_reuses_table1_runs_by_directory():
    table1 = {r.logdir for r in runs_of("table1")}
    shared = [r.logdir for r in runs_of("table2") if r.logdir in table1]
    assert len(shared) == 2 * 3 * 5  # VAT, VAT+EntMin, VAT+NS3L on both data sets
    assert not any("vat+pl" in str(d) for d in shared)


def test_presets_are_resolved_per_data_set():
    def resolved(table, dataset, method, n_labeled=None):
        def wanted(run):
            given = flags(run.argv)
            same_n = n_labeled is None or given["n_labeled"] == str(n_labeled)
            return given["dataset"] == dataset and given["method"] == method and same_n

        return sweep.resolved_config(next(filter(wanted, runs_of(table))).argv)

    c100 = resolved("table1", "cifar100", "vat+ns3l")
    assert c100.value("ns3l_threshold") == 0.004
    assert (c100.value("lr"), c100.value("vat_weight"), c100.value("ns3l_weight")) == (
        3e-3, 0.6, 0.3,
    )  # fmt: skip
    c10 = resolved("table1", "cifar10", "vat+ns3l")
    assert (c10.value("ns3l_threshold"), c10.value("lr"), c10.value("vat_weight")) == (
        0.04, 6e-4, 0.3,
    )  # fmt: skip
    assert resolved("table1", "svhn", "vat").value("vat_epsilon") == 1.0
    assert c10.value("train_steps") == 200_000 and c10.wrn_depth == 28
    assert resolved("table3", "cifar10", "mixmatch+ns3l", 250).value("ns3l_weight") == 5.0
    assert resolved("table3", "cifar10", "mixmatch+ns3l", 4000).value("ns3l_weight") == 10.0
    svhn = resolved("table4", "svhn", "mixmatch+ns3l", 250)
    assert (svhn.value("w_match"), svhn.value("ns3l_weight")) == (250.0, 2.0)
    stl = resolved("table5", "stl10", "mixmatch")
    assert (stl.value("w_match"), stl.value("scales")) == (50.0, 4)


def test_print_config_of_a_dry_run_command_shows_the_cifar100_threshold():
    run = next(r for r in runs_of("table1") if "cifar100@10000/pt/vat+ns3l/seed1" in str(r.logdir))
    argv = [sys.executable, *run.argv[1:], "--print_config"]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("ns3l_threshold"))
    assert line.split()[1] == "0.004"


def test_figure3_grid_passes_only_the_values_off_the_preset():
    runs = [r for r in runs_of("figure3") if r.seed == 1]
    assert len(runs) == 3 * 4 * 3
    ns3l = {(flags(r.argv).get("ns3l_threshold"), flags(r.argv).get("ns3l_weight"))
            for r in runs if flags(r.argv)["method"] == "ns3l"}  # fmt: skip
    assert len(ns3l) == 12
    assert (None, None) in ns3l  # T 0.04, λ1 1: Table 1's own run, no override
    assert ("0.08", "3.0") in ns3l and ("0.02", None) in ns3l
    mixmatch = {str(r.logdir) for r in runs if flags(r.argv)["method"] == "mixmatch+ns3l"}
    assert "R/svhn@250/mixmatch+ns3l/seed1" in mixmatch  # T 0.05, λ1 2: Table 4's run
    assert "R/svhn@250/mixmatch+ns3l/T0.02-w5/seed1" in mixmatch
    table1 = {r.logdir for r in runs_of("table1")}
    assert sum(r.logdir in table1 for r in runs) == 2  # NS3L and VAT+NS3L at their presets
    assert "R/cifar10@4000/pt/ns3l/T0.02-w0.3/seed1" in {str(r.logdir) for r in runs}


def test_scale_shortens_the_schedule_and_keeps_an_evaluation():
    table = TABLES["table1"]
    vat = Cell("realistic_ssl", "cifar10", 4000, "vat", protocol="tf")
    argv = sweep.command(vat, 1, Path("x"), table, scale=0.01, python="python")
    assert {k: flags(argv)[k] for k in realistic_presets.SCHEDULE} == {
        "train_steps": "2000", "lr_decay_steps": "1300", "warmup_steps": "500", "eval_every": "50",
    }  # fmt: skip
    # [PT] evaluates every 25,000 steps: 250 at ×0.01, the protocol's own cadence scaled.
    pt = flags(sweep.command(vat.with_protocol("pt"), 1, Path("x"), table, 0.01, python="python"))
    assert pt["eval_every"] == "250"
    tiny = flags(sweep.command(vat, 1, Path("x"), table, scale=1e-6, python="python"))
    assert (tiny["train_steps"], tiny["eval_every"]) == ("1", "1")
    mixmatch = Cell("mixmatch", "svhn", 250, "mixmatch")
    got = flags(sweep.command(mixmatch, 1, Path("x"), TABLES["table4"], 0.001, python="python"))
    assert (got["train_kimg"], got["warmup_kimg"], got["report_kimg"]) == ("66", "1", "1")


def test_mini_table_flags_and_scale_on_top_of_them():
    runs = runs_of("mini")
    assert len(runs) == 12 * 3 and sorted({r.seed for r in runs}) == [1, 2, 3]  # 8 + 2 + 2
    ns3l = flags(next(r.argv for r in runs if "/pt/ns3l/" in str(r.logdir)))
    assert (ns3l["dataset"], ns3l["n_labeled"], ns3l["wrn_depth"], ns3l["train_steps"]) == (
        "digits", "50", "10", "400",
    )  # fmt: skip
    plan = sweep.plan(TABLES["mini"], Path("R"), scale=0.5)
    half = flags(next(r.argv for r in plan if "/pt/ns3l/" in str(r.logdir)))
    assert (half["train_steps"], half["warmup_steps"], half["eval_every"]) == ("200", "50", "20")
    supervised = flags(next(r.argv for r in plan if "/pt/supervised/" in str(r.logdir)))
    assert "warmup_steps" not in supervised and supervised["train_steps"] == "200"  # no ramp-up
    fixmatch = flags(next(r.argv for r in plan if "/fixmatch+ns3l/" in str(r.logdir)))
    assert (fixmatch["filters"], fixmatch["train_kimg"], fixmatch["report_kimg"]) == (
        "16",
        "12",
        "1",
    )


def write_results(run: sweep.Run, finished: bool, step: int, **config_changes) -> None:
    """What the train command writes: its resolved config, and in config.json the precision
    policy the loop derives (as a first start records it)."""
    config = sweep.resolved_config(run.argv).as_json() | config_changes
    run.logdir.mkdir(parents=True)
    (run.logdir / "config.json").write_text(json.dumps(config | {"precision": "float32"}))
    record = {"config": config, "finished": finished, "step": step}
    (run.logdir / "results.json").write_text(json.dumps(record))


def test_status_skips_finished_resumes_cut_off_and_refuses_others(tmp_path):
    runs = sweep.plan(TABLES["table5"], tmp_path)
    write_results(runs[0], finished=True, step=2**18)
    write_results(runs[1], finished=False, step=3072)
    write_results(runs[2], finished=True, step=100, train_kimg=100)
    (runs[3].logdir).mkdir(parents=True)
    (runs[3].logdir / "config.json").write_text(
        json.dumps(sweep.resolved_config(runs[3].argv).as_json() | {"data_dir": "/elsewhere"})
    )  # started, killed before its first evaluation, resumed with another --data_dir
    states = [sweep.status(run) for run in runs]
    assert states[0] == ("finished", "")
    assert states[1] == ("resume", "at step 3072")
    assert states[2][0] == "conflict" and "train_kimg=100 (this sweep: 16384)" in states[2][1]
    assert states[3] == ("resume", "at step 0")
    assert {s for s, _ in states[4:]} == {"new"}


def test_dry_run_prints_only_what_is_left_to_run(tmp_path, capsys):
    runs = sweep.plan(TABLES["table3"], tmp_path)
    write_results(runs[0], finished=True, step=2**20)
    write_results(runs[1], finished=False, step=1024)
    data_dir = tmp_path / "tfds"  # nothing prepared in it
    code = sweep.main(["table3", "--results", str(tmp_path), "--dry-run", "--gpus", "0,1",
                       "--data_dir", str(data_dir)])  # fmt: skip
    out, err = capsys.readouterr()
    commands = [shlex.split(line) for line in out.splitlines() if not line.startswith("#")]
    assert code == 0 and len(commands) == 4 * 5 - 1
    assert f"# finished: {runs[0].logdir}" in out
    assert not any(f"--logdir={runs[0].logdir}" in argv for argv in commands)
    assert f"--logdir={runs[1].logdir}" in out and "# resume at step 1024" in out
    assert "20 runs under" in out and "19 to run (1 resumed), 1 finished, 0 conflicts" in out
    assert "GPUs 0,1, one run per GPU" in out
    assert err.startswith(f"# warning: cifar10 is not prepared in {data_dir}: ")  # one line
    assert f"`tfds build cifar10 --data_dir={data_dir}`" in err and err.count("\n") == 1
    # 2.35 passes per iteration, 2^20 iterations (the resumed run 1,024 fewer), 25 ms a pass and
    # 60 s a start: 18 × 61,664 s + 61,604 s = 325 GPU-hours; 10 runs on one GPU: 7.1 days.
    assert "# estimate: 325 GPU-hours of training at 25 ms per WRN-28-2 pass (assumed" in out
    assert out.rstrip().endswith("about 7.1 days on 2 GPUs")


def test_options_from_the_environment(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RESULTS", str(tmp_path))
    monkeypatch.setenv("SCALE", "0.5")
    monkeypatch.setenv("GPUS", "none")
    monkeypatch.setenv("SEEDS", "2,4")
    monkeypatch.setenv("MIXED_PRECISION", "1")
    assert sweep.main(["table5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    commands = [flags(shlex.split(line)) for line in out.splitlines() if line.startswith("/")]
    assert len(commands) == 2 * 2
    assert {c["seed"] for c in commands} == {"2", "4"}
    assert {c["train_kimg"] for c in commands} == {"8192"}  # STL-10's 16,384 kimg, halved
    assert all(c["mixed_precision"] == "" for c in commands)
    assert all(c["logdir"].startswith(str(tmp_path)) for c in commands)
    assert "CPU, one run at a time" in out
    with pytest.raises(SystemExit):
        sweep.parse_args(["table1", "--scale", "2"])


def test_execution_flags_reach_every_command_and_a_precision_change_is_a_conflict(tmp_path):
    runs = sweep.plan(TABLES["table4"], tmp_path, execution=["--xla", "--mixed_precision"])
    assert all(run.argv[-2:] == ("--xla", "--mixed_precision") for run in runs)
    write_results(sweep.plan(TABLES["table4"], tmp_path)[0], finished=False, step=1024)
    state, why = sweep.status(runs[0])  # started without either flag
    assert state == "conflict" and "mixed_precision=False (this sweep: True)" in why
    xla_only = sweep.plan(TABLES["table4"], tmp_path, execution=["--xla"])
    assert sweep.status(xla_only[0]) == ("resume", "at step 1024")  # XLA may change


def test_shell_script_dry_run(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "table2.sh"), "--dry-run", "--results", str(tmp_path)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "GPUS": ""}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert len(commands) == 8 * 5
    assert all(" -m realistic_ssl.train --method=vat" in line for line in commands)


def test_a_command_its_train_py_would_refuse_stops_the_sweep_before_any_run(monkeypatch, capsys):
    bad = Table("bad", "a flag the MixMatch command does not have", TABLES["table5"].cells,
                flags={"mixmatch": {"wrn_depth": 10}})  # fmt: skip
    monkeypatch.setitem(TABLES, "bad", bad)
    assert sweep.main(["bad", "--results", "unused", "--gpus", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "wrn_depth" in err


def test_a_key_added_to_the_code_after_a_run_started(tmp_path):
    runs = sweep.plan(TABLES["table5"], tmp_path)
    for run, finished in zip(runs[:2], (True, False), strict=True):
        write_results(run, finished=finished, step=5)
        for name in ("config.json", "results.json"):  # before `deterministic` existed
            record = json.loads((run.logdir / name).read_text())
            (record["config"] if name == "results.json" else record).pop("deterministic")
            (run.logdir / name).write_text(json.dumps(record))
    assert sweep.status(runs[0]) == ("finished", "")
    state, why = sweep.status(runs[1])  # its train.py would refuse to resume it
    assert state == "conflict" and "deterministic=unset (this sweep: False)" in why


def test_tune_runs_a_named_grid_or_one_given_on_the_command_line(tmp_path, capsys):
    assert sweep.main(["tune", "--preset", "vat+pl", "--dry-run", "--results", str(tmp_path),
                       "--gpus", "none"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    commands = [flags(shlex.split(line)) for line in out.splitlines() if line.startswith("/")]
    assert len(commands) == 2 * 9 * 5  # CIFAR-10/4000 and SVHN/1000, 3 x 3 points, 5 seeds
    points = {(c["dataset"], c.get("pl_weight"), c.get("pl_threshold")) for c in commands}
    assert ("cifar10", None, None) in points  # 1.0 and 0.95: Table 2's own VAT + PL run
    assert ("svhn", "3.0", "0.8") in points and all(c["method"] == "vat+pl" for c in commands)
    assert any(c["logdir"].endswith("cifar10@4000/pt/vat+pl/pl_weight3-pl_threshold0.8/seed1")
               for c in commands)  # fmt: skip
    grid = ["tune", "--method=ns3l", "--dataset=svhn", "--grid", "ns3l_weight=0.5,2",
            "--dry-run", "--results", str(tmp_path), "--seeds", "1", "--gpus", "none"]  # fmt: skip
    assert sweep.main(grid) == 0
    out = capsys.readouterr().out
    commands = [flags(shlex.split(line)) for line in out.splitlines() if line.startswith("/")]
    assert [(c["n_labeled"], c["ns3l_weight"]) for c in commands] == [
        ("1000", "0.5"),
        ("1000", "2.0"),
    ]
    assert sweep.main(["tune", "--method=ns3l", "--grid", "wrn_depth=10,16"]) == 2
    assert "--grid wrn_depth: expected a setting of ns3l among ns3l_threshold" in (
        capsys.readouterr().err
    )
    assert sweep.main(["tune", "--method=ns3l"]) == 2
    assert "tune: expected --preset NAME, or --method" in capsys.readouterr().err


def test_every_table_has_its_shell_script():
    scripts = {path.name: path.read_text() for path in (ROOT / "scripts").glob("*.sh")}
    for name in set(TABLES) - {"demo"}:  # the demo's own command is scripts.demo
        script = {"mini": "mini_table.sh"}.get(name, f"{name}.sh")
        assert f"-m scripts.sweep {name} " in scripts[script], script
