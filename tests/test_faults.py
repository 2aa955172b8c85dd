"""Faults injected into real runs of both stacks: SIGKILL in every window of an evaluation,
SIGTERM and SIGINT, damaged and foreign checkpoints, litter, a full disk, a read-only logdir, two
runs in one logdir, divergence, deleted or damaged results.json, a killed sweep.

A SIGKILL is a real one, sent by the run to itself where $NS3L_FAULT names (`ns3l.training.faults.
fault_point`), or by the test; restarts run in this process with the configuration the command
resolves to, which is what rerunning the command does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ns3l.errors import UsageError
from ns3l.training.faults import FAULT_ENV, Diverged, claim_logdir
from scripts import report, sweep

ROOT = Path(__file__).parents[1]
TINY = {
    "realistic_ssl": ["--method=ns3l", "--dataset=digits", "--wrn_depth=10", "--wrn_width=1",
                      "--train_steps=6", "--eval_every=2", "--warmup_steps=2",
                      "--lr_decay_steps=3", "--bn_momentum=0.9", "--deterministic"],
    "mixmatch": ["--method=mixmatch+ns3l", "--dataset=digits", "--batch=256", "--train_kimg=2",
                 "--report_kimg=1", "--filters=4", "--repeat=1", "--warmup_kimg=2",
                 "--deterministic"],
}  # fmt: skip
LAST = {"realistic_ssl": 6, "mixmatch": 8}  # the last step; evaluations at 2, 4, 6 and 1, 5
MIDDLE = {"realistic_ssl": 4, "mixmatch": 5}  # an evaluation before the last step
SHORT = {"realistic_ssl": "--train_steps=2", "mixmatch": "--train_kimg=1"}
STACKS = tuple(TINY)
# BN keeps the loss of these tiny runs finite at lr 1000 for their 6-8 steps; an lr that
# overflows the weights themselves makes them diverge at once.
LR_DIVERGES = {"realistic_ssl": "--lr=1e38", "mixmatch": "--lr=1e38"}


def argv(stack: str, logdir: Path, *extra: str) -> list[str]:
    """The tiny run's command; a supervised run has no ramp-up, so it drops --warmup_steps."""
    tiny = TINY[stack]
    if "--method=supervised" in extra:
        tiny = [flag for flag in tiny if not flag.startswith("--warmup_steps=")]
    return [sys.executable, "-m", f"{stack}.train", *tiny, f"--logdir={logdir}", *extra]


def train_in_process(stack: str, logdir: Path, *extra: str) -> dict:
    """What rerunning the command does, without a new process."""
    module = __import__(f"{stack}.loop", fromlist=["train"])
    return module.train(sweep.resolved_config(argv(stack, logdir, *extra)))


def run_command(stack: str, logdir: Path, *extra: str, fault: str | None = None, **kwargs):
    env = dict(os.environ) | ({FAULT_ENV: fault} if fault else {})
    return subprocess.run(argv(stack, logdir, *extra), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, **kwargs)  # fmt: skip


def results_of(logdir: Path) -> dict:
    return json.loads((logdir / "results.json").read_text())


def leftovers(logdir: Path) -> list[Path]:
    return [*logdir.glob("checkpoints/*_temp"), *logdir.glob(".*.tmp")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Each stack's run, never interrupted: its results.json."""
    root = tmp_path_factory.mktemp("uninterrupted")
    return {stack: train_in_process(stack, root / stack) for stack in STACKS}


def same_results(got: dict, want: dict) -> None:
    assert got["history"] == want["history"] and got["metrics"] == want["metrics"]
    assert got["finished"] and got["step"] == want["step"]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(
    ("window", "where"),
    [("after_call", "between"), ("after_checkpoint", "middle"), ("after_results", "middle"),
     ("after_checkpoint", "last")],
)  # fmt: skip
def test_a_kill_in_any_window_loses_nothing(stack, window, where, uninterrupted, tmp_path):
    step = {"between": 3, "middle": MIDDLE[stack], "last": LAST[stack]}[where]
    killed = run_command(stack, tmp_path, fault=f"{window}@{step}")
    assert killed.returncode == -signal.SIGKILL
    stale = results_of(tmp_path)
    if window == "after_checkpoint":  # the evaluation at `step` is in the checkpoint only
        assert stale["step"] < step and not stale["finished"]
    same_results(train_in_process(stack, tmp_path), uninterrupted[stack])
    same_results(results_of(tmp_path), uninterrupted[stack])
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("stack", STACKS)
def test_a_rerun_of_a_finished_run_says_so_and_rebuilds_a_deleted_results_json(
    stack, uninterrupted, tmp_path, capsys
):
    train_in_process(stack, tmp_path)
    (tmp_path / "results.json").unlink()
    again = train_in_process(stack, tmp_path)
    same_results(again, uninterrupted[stack])
    out = capsys.readouterr().out
    assert "already finished: " in out and f"{tmp_path}/results.json" in out


@pytest.mark.parametrize("stack", STACKS)
def test_litter_of_killed_runs_is_removed_on_start(stack, tmp_path):
    (tmp_path / "checkpoints" / "ckpt-4_temp").mkdir(parents=True)
    (tmp_path / "checkpoints" / "ckpt-4_temp" / "part-00000").write_bytes(b"x")
    for name in (".results.json.abc123.tmp", ".config.json.def456.tmp"):
        (tmp_path / name).write_text("{")
    train_in_process(stack, tmp_path)
    assert not leftovers(tmp_path)


def damage(path: Path, how: str) -> None:
    if how == "truncated data":
        data = next(path.parent.glob(path.name + ".data-*"))
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif how == "flipped bytes":
        data = next(path.parent.glob(path.name + ".data-*"))
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif how == "missing index":
        path.with_suffix(".index").unlink()
    elif how == "truncated index":
        index = path.with_suffix(".index")
        index.write_bytes(index.read_bytes()[:40])


@pytest.mark.parametrize("how", ["truncated data", "flipped bytes", "missing index",
                                  "truncated index"])  # fmt: skip
def test_a_damaged_checkpoint_falls_back_to_the_newest_that_restores(
    how, uninterrupted, tmp_path, capsys
):
    train_in_process("realistic_ssl", tmp_path)
    damage(tmp_path / "checkpoints" / "ckpt-6", how)
    resumed = train_in_process("realistic_ssl", tmp_path)  # from ckpt-4, to the same end
    same_results(resumed, uninterrupted["realistic_ssl"])
    warning = [line for line in capsys.readouterr().err.splitlines() if "damaged" in line]
    assert len(warning) == 1 and "ckpt-6" in warning[0] and "trying an older" in warning[0]


def test_a_damaged_mixmatch_checkpoint_too(uninterrupted, tmp_path):
    train_in_process("mixmatch", tmp_path)
    damage(tmp_path / "checkpoints" / "ckpt-8", "flipped bytes")
    same_results(train_in_process("mixmatch", tmp_path), uninterrupted["mixmatch"])


def test_no_checkpoint_restores_is_one_line_naming_them(tmp_path):
    train_in_process("realistic_ssl", tmp_path)
    for step in (2, 4, 6):
        damage(tmp_path / "checkpoints" / f"ckpt-{step}", "truncated index")
    with pytest.raises(UsageError) as error:
        train_in_process("realistic_ssl", tmp_path)
    message = str(error.value)
    assert message.startswith(f"no checkpoint in {tmp_path}/checkpoints restores: ckpt-6 (")
    assert "ckpt-4 (" in message and "ckpt-2 (" in message and "\n" not in message


@pytest.mark.parametrize("state", ["garbage", "deleted"])
def test_a_garbage_or_deleted_state_file_loses_no_checkpoint(state, tmp_path, capsys):
    train_in_process("realistic_ssl", tmp_path)
    state_file = tmp_path / "checkpoints" / "checkpoint"
    if state == "garbage":
        state_file.write_bytes(b"\x00\xffnot a state file")
    else:
        state_file.unlink()
    capsys.readouterr()
    train_in_process("realistic_ssl", tmp_path)  # found ckpt-6 from its files: nothing to redo
    assert "already finished: test_error_at_best_valid" in capsys.readouterr().out
    assert "ckpt-6" in state_file.read_text()  # the state file is rebuilt


@pytest.mark.parametrize(("stack", "first", "second", "key"), [
    ("realistic_ssl", ["--wrn_width=1"], ["--wrn_width=2"], "wrn_width"),
    ("realistic_ssl", ["--method=supervised"], ["--method=ns3l"], "method"),
    ("mixmatch", ["--method=mixmatch"], ["--method=mixmatch+ns3l"], "method"),
])  # fmt: skip
def test_another_configurations_checkpoint_is_refused_without_its_config_json(
    stack, first, second, key, tmp_path
):
    train_in_process(stack, tmp_path, *first, SHORT[stack])
    (tmp_path / "config.json").unlink()
    (tmp_path / "results.json").unlink()
    with pytest.raises(UsageError) as error:
        train_in_process(stack, tmp_path, *second, SHORT[stack])
    message = str(error.value)
    assert "was written by a run with" in message and f"{key}=" in message
    assert "\n" not in message


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.parametrize(("stack", "signum"), [("realistic_ssl", signal.SIGTERM),
                                               ("mixmatch", signal.SIGINT)])  # fmt: skip
def test_a_signal_saves_a_checkpoint_at_the_step_and_exits_in_one_line(stack, signum, tmp_path):
    long = {"realistic_ssl": ["--train_steps=100000", "--eval_every=50000"],
            "mixmatch": ["--train_kimg=25000", "--report_kimg=12500"]}[stack]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(argv(stack, tmp_path, *long), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    assert child.stdout.readline().startswith("step 1/")  # the first step has run
    time.sleep(2)  # and some more
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signum
    last = err.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"stopped by {name} at step ") and "the same command resumes" in last
    assert "Traceback" not in err
    step = int(last.split(" at step ")[1].split(":")[0])
    assert step > 1 and (tmp_path / "checkpoints" / f"ckpt-{step}.index").exists()
    assert results_of(tmp_path)["step"] == step and not results_of(tmp_path)["finished"]


def test_a_second_run_in_the_same_logdir_is_refused_naming_the_first(tmp_path):
    with claim_logdir(tmp_path):
        second = run_command("realistic_ssl", tmp_path)
    assert second.returncode == 2
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path} is in use by process {os.getpid()} on ")
    assert "one run per logdir" in last
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("stack", STACKS)
def test_divergence_stops_the_run_marks_results_and_the_sweep_and_report_say_so(
    stack, tmp_path, capsys
):
    with pytest.raises(Diverged) as error:
        train_in_process(stack, tmp_path, LR_DIVERGES[stack])
    record = results_of(tmp_path)
    assert record["diverged"]["step"] == error.value.step >= 1 and not record["finished"]
    assert "was not finite at step" in str(error.value) and "\n" not in str(error.value)
    for path in (tmp_path / "checkpoints").glob("ckpt-*.index"):  # only finite checkpoints
        assert int(path.name[5:-6]) < error.value.step
    run = sweep.Run(None, 1, tmp_path, tuple(argv(stack, tmp_path, LR_DIVERGES[stack])))
    state, why = sweep.status(run)
    assert state == "diverged" and f"diverged at step {error.value.step}" in why
    capsys.readouterr()
    report.report(tmp_path, tmp_path / "out")
    out = capsys.readouterr().out
    # An lr off the preset makes it a grid point: the tuning section shows it diverged.
    assert "1 runs, 0 finished, 1 diverged" in out and "| 0 (+1 diverged) |" in out


def test_a_diverged_command_exits_3_in_one_line(tmp_path):
    result = run_command("mixmatch", tmp_path, LR_DIVERGES["mixmatch"])
    assert result.returncode == 3 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: diverged: ") and " was not finite at step " in last


def test_results_json_is_strict_json_without_a_validation_set(tmp_path):
    train_in_process("realistic_ssl", tmp_path, "--n_valid=0", "--train_steps=2")
    text = (tmp_path / "results.json").read_text()
    record = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in results.json"))
    assert record["history"][0]["valid_error"] is None
    assert record["metrics"]["test_error_at_best_valid"] == record["history"][-1]["test_error"]


def mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"needs mount (root): {result.stderr.strip()}")


def test_a_read_only_logdir_is_one_line_before_anything_is_built(tmp_path):
    source, target = tmp_path / "source", tmp_path / "read_only"
    source.mkdir(), target.mkdir()
    mount("--bind", str(source), str(target))
    try:
        mount("-o", "remount,bind,ro", str(target))
        result = run_command("realistic_ssl", target / "run")
    finally:
        subprocess.run(["umount", str(target)], check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --logdir={target / 'run'}: cannot write there (Read-only file system)"
    )


def test_a_full_disk_is_one_line_and_the_run_resumes_once_there_is_space(uninterrupted, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=900k", "tmpfs", str(disk))
    try:
        with pytest.raises(UsageError) as error:
            train_in_process("realistic_ssl", disk / "run")
        message = str(error.value)
        assert message.startswith(f"no space left on {disk / 'run'}") and "\n" not in message
        assert "MB needed for max_to_keep + 1 = 4 checkpoints" in message
        mount("-o", "remount,size=64m", str(disk))
        same_results(train_in_process("realistic_ssl", disk / "run"),
                     uninterrupted["realistic_ssl"])  # fmt: skip
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_killed_sweep_takes_its_trainer_with_it(tmp_path):
    table = ["--results", str(tmp_path), "--gpus", "none", "--seeds", "1"]
    sweep_process = subprocess.Popen(
        [sys.executable, "-m", "scripts.sweep", "mini", *table], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lock = tmp_path / "digits@50/pt/supervised/seed1/.lock"
    wait_for(lambda: lock.exists() and lock.read_text().startswith("process "))
    trainer = int(lock.read_text().split()[1])
    sweep_process.send_signal(signal.SIGKILL)
    sweep_process.wait(timeout=30)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            os.kill(trainer, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(trainer, signal.SIGKILL)
        pytest.fail("the trainer outlived its sweep")
    assert trainer != sweep_process.pid


def test_damaged_results_are_skipped_with_one_line_by_the_report_and_resumed_by_the_sweep(
    tmp_path, capsys
):
    runs = sweep.plan(sweep.TABLES["table1"], tmp_path)
    for run, text in zip(runs[:3], ("", '{"stack": "realis', "[]"), strict=True):
        run.logdir.mkdir(parents=True)
        (run.logdir / "results.json").write_text(text)
    (runs[3].logdir / "checkpoints").mkdir(parents=True)
    (runs[3].logdir / "config.json").write_text("{}")
    problems = report.report(tmp_path, tmp_path / "out")
    out = capsys.readouterr().out
    assert len(problems) == 4 and "4 skipped" in out.splitlines()[0]
    assert f"- skipped: {runs[0].logdir}/results.json is unreadable (JSONDecodeError" in out
    assert f"- skipped: {runs[3].logdir} has checkpoints but no results.json" in out
    assert report.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert sweep.status(runs[1])[0] == "resume"
    assert f"{runs[1].logdir}/results.json is unreadable" in capsys.readouterr().err


def test_download_fails_in_seconds_when_its_host_does_not_resolve(tmp_path):
    from tests.ns3l.test_datasets import Ns3lRemote

    start = time.monotonic()
    with pytest.raises(UsageError) as error:
        from ns3l.training.datasets import download_and_prepare

        download_and_prepare(Ns3lRemote(data_dir=str(tmp_path)), "ns3l_remote")
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert message.startswith("--download: ns3l-data.invalid (a download host of ns3l_remote)")
    assert "\n" not in message and not list(tmp_path.glob("downloads/**/*.tmp.*"))
