"""The Slurm executor: through submitit's local executor (real subprocesses, submitit's own
signal, checkpoint and requeue), and, marked slow, on a real single-node Slurm cluster started by
scripts/dev/slurm_local.sh (skipped where its daemons cannot start)."""

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit

from scripts import slurm, sweep
from scripts.status import SLURM_JOB_FILE
from scripts.tables import TABLES

ROOT = Path(__file__).parents[2]
SHORT = ("--train_steps=200", "--eval_every=100", "--lr_decay_steps=130")  # supervised: no ramp


def wait_for(condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def demo_runs(root: Path) -> list[sweep.Run]:
    return sweep.plan(TABLES["demo"], root)


def test_options_reach_submitit_and_bad_extras_are_one_line():
    options = slurm.SlurmOptions(partition="gpu", gpus_per_run=2, time_minutes=90,
                                 max_parallel=8, account="lab", extra={"qos": "high"})  # fmt: skip
    assert options.executor_parameters() == {
        "timeout_min": 90, "gpus_per_node": 2, "slurm_partition": "gpu",
        "slurm_array_parallelism": 8, "slurm_account": "lab",
        "slurm_additional_parameters": {"qos": "high"},
    }  # fmt: skip
    assert slurm.SlurmOptions(gpus_per_run=0).executor_parameters()["timeout_min"] == 1440
    assert "gpus_per_node" not in slurm.SlurmOptions(gpus_per_run=0).executor_parameters()
    assert slurm.parse_extra("qos=high,constraint=a100") == {"qos": "high", "constraint": "a100"}
    with pytest.raises(Exception, match="--slurm_extra='qos': expected key=value"):
        slurm.parse_extra("qos")


def test_a_slurm_dry_run_prints_the_array_and_submits_nothing(tmp_path, capsys):
    code = sweep.main(
        [
            "demo",
            "--executor=slurm",
            "--dry-run",
            "--results",
            str(tmp_path),
            "--slurm_partition=gpu",
            "--slurm_max_parallel=2",
            "--slurm_time=60",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert ("# would submit one Slurm array of 5 tasks, partition gpu, 1 GPU per run, 60 min "
            "per task, at most 2 at once") in out  # fmt: skip
    commands = [shlex.split(line) for line in out.splitlines() if line.startswith("/")]
    trainers = [next(word for word in c if word.endswith(".train")) for c in commands]
    assert trainers == ["realistic_ssl.train"] * 3 + ["fixmatch.train"] * 2
    assert not list(tmp_path.rglob(SLURM_JOB_FILE)) and not (tmp_path / "slurm").exists()


def test_a_task_signalled_before_its_time_limit_checkpoints_is_requeued_and_resumes(tmp_path):
    run = demo_runs(tmp_path)[0]  # supervised
    argv = (*run.argv, *SHORT)
    # submitit's local executor: 25-s slots; its controller sends submitit's signal 7 s before
    # the end of each, as Slurm does before a time limit, and requeues what checkpointed.
    executor = submitit.LocalExecutor(tmp_path / "submitit", max_num_timeout=slurm.MAX_TIMEOUTS)
    executor.update_parameters(timeout_min=25 / 60, signal_delay_s=7)
    log = run.logdir / "train.log"
    (job,) = slurm.submit([slurm.TrainTask(argv, str(log))], executor)
    assert job.result() == 0  # requeued by submitit's controller, then finished
    results = json.loads((run.logdir / "results.json").read_text())
    assert results["finished"] and results["step"] == 200
    text = log.read_text()
    starts = text.count("\n== 20")
    # Each slot but the last ends requeued: the trainer saved and exited 143, or (on a machine
    # slow enough that the signal came while it was still starting) died by SIGTERM, or (on a
    # loaded one) finished just as the signal came, and the requeued slot finds it finished.
    requeued = re.findall(r"^== exit (143|-15|0) \(requeued\)$", text, re.M)
    assert starts >= 2 and len(requeued) == starts - 1 and "143" in requeued, text
    assert len(re.findall(r"^== exit 0$", text, re.M)) == 1 and text.count("\nfinished: ") == 1
    stopped = int(re.findall(r"stopped by SIGTERM at step (\d+)", text)[-1])
    after_stop = text[text.rindex("stopped by SIGTERM") :]
    first_step = int(re.search(r"^step (\d+)/200", after_stop, re.M)[1])
    assert 0 < stopped < 200 and first_step == stopped + 1  # resumed from its checkpoint
    assert [h["step"] for h in results["history"]] == [100, 200]


@pytest.mark.slow
def test_a_five_run_digits_sweep_on_slurm_with_a_requeued_task(slurm_cluster, tmp_path):
    """`sweep demo --executor=slurm` submits 5 array tasks (both stacks); one is sent SIGTERM
    by `scancel` mid-run, checkpoints, is requeued and resumes; all five finish; a second
    submission submits nothing."""
    results = tmp_path / "runs"
    base = [sys.executable, "-m", "scripts.sweep", "demo", "--executor=slurm",
            "--results", str(results), "--slurm_gpus_per_run=0", "--slurm_time=30",
            "--scale=0.3"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    submitted = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "# submitted 5 runs as Slurm job " in submitted.stdout
    runs = demo_runs(results)
    jobs = [(r.logdir / SLURM_JOB_FILE).read_text().strip() for r in runs]
    target = runs[2]  # vat+ns3l, the longest
    target_log = target.logdir / "train.log"
    wait_for(lambda: target_log.exists() and "\nstep 1/" in target_log.read_text(), timeout=600)
    time.sleep(5)  # some steps in
    subprocess.run(["scancel", "--signal=TERM", jobs[2]], check=True)
    again = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, env=env)
    assert "0 to run" in again.stdout, again.stdout  # queued or running: nothing resubmitted
    for run in runs:  # each task finished: its trainer exited 0
        log = run.logdir / "train.log"
        wait_for(lambda log=log: log.exists() and "== exit 0" in log.read_text(), timeout=900)
    log = (target.logdir / "train.log").read_text()
    assert "stopped by SIGTERM at step " in log and log.count("== exit 0") == 1
    status = subprocess.run([*base[:3], "status", "--results", str(results), "--scale=0.3"],
                            cwd=ROOT,
                            capture_output=True, text=True, env=env)  # fmt: skip
    assert "demo (pt): 5 runs: 5 finished\n" in status.stdout
    # The mini table's cells share these directories, not their configuration: not shown.
    assert "mini" not in status.stdout


def test_status_shows_every_state_per_table(tmp_path, capsys):
    from ns3l.training.faults import claim_logdir

    runs = sweep.plan(TABLES["table3"], tmp_path)  # 4 cells x 5 seeds

    def write(run, record=None, log=None):  # noqa: E306
        run.logdir.mkdir(parents=True, exist_ok=True)
        config = sweep.resolved_config(run.argv).as_json()
        (run.logdir / "config.json").write_text(json.dumps(config))
        if record is not None:
            (run.logdir / "results.json").write_text(json.dumps({"config": config} | record))
        if log is not None:
            (run.logdir / "train.log").write_text(log)

    write(runs[0], {"finished": True, "step": 9})
    write(runs[1], {"finished": False, "step": 3, "diverged": {"step": 3, "what": "loss"}})
    write(
        runs[2],
        {"finished": False, "step": 1024},
        log="\n== 2026-12-03 10:00:00 job 7\npython -m ...\nerror: out of memory\n== exit 1\n",
    )
    write(runs[3], {"finished": False, "step": 2048}, log="\n== 2026-12-03 10:00:00 x\n")
    with claim_logdir(runs[4].logdir):
        assert sweep.main(["status", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("table3: 20 runs: 1 finished, 1 running, 1 failed, 1 diverged, "
                                   "1 unfinished, 15 not started")  # fmt: skip
    assert f"  failed: {runs[2].logdir.relative_to(tmp_path)} exit 1: error: out of memory" in out
    assert f"  diverged: {runs[1].logdir.relative_to(tmp_path)} at step 3" in out
    assert f"  unfinished: {runs[3].logdir.relative_to(tmp_path)} at step 2048" in out
    assert f"  running: {runs[4].logdir.relative_to(tmp_path)} at step 0" in out
