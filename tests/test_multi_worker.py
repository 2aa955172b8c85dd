"""One run over several worker processes: MultiWorkerMirroredStrategy with two real workers on
loopback ports ($TF_CONFIG), against the single-process run; only the chief writes the run's
files; a worker killed or signalled mid-run, and the run resumed from the chief's checkpoint."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

ROOT = Path(__file__).parents[1]
TINY = ["--method=ns3l", "--dataset=digits", "--wrn_depth=10", "--wrn_width=1",
        "--train_steps=40", "--eval_every=10", "--warmup_steps=10", "--lr_decay_steps=30",
        "--bn_momentum=0.9", "--deterministic", "--sync_bn", "--strategy=multi_worker"]  # fmt: skip


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(command: list[str], log_dir: Path) -> list[subprocess.Popen]:
    """Two workers of one cluster, each running `command` with its $TF_CONFIG."""
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = dict(os.environ, TF_CONFIG=tf_config, PYTHONUNBUFFERED="1", TMPDIR=str(log_dir))
        env.pop("TF_FORCE_GPU_ALLOW_GROWTH", None)
        out = (log_dir / f"worker{index}.log").open("w")
        workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                        stderr=subprocess.STDOUT))  # fmt: skip
    return workers


def wait_all(workers: list[subprocess.Popen], timeout: float = 300) -> list[int]:
    return [worker.wait(timeout=timeout) for worker in workers]


def train_command(logdir: Path) -> list[str]:
    return [sys.executable, "-m", "realistic_ssl.train", *TINY, f"--logdir={logdir}"]


def saved_weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def test_two_workers_take_the_single_process_steps(tmp_path):
    out = tmp_path / "weights.npz"
    command = [sys.executable, "-m", "tests.ns3l.multi_worker_steps", str(out)]
    assert wait_all(start_workers(command, tmp_path)) == [0, 0], (
        tmp_path / "worker1.log"
    ).read_text()
    # The single process in a fresh process too: this one's kernels depend on what ran before
    # (op determinism, once enabled by a --deterministic test, stays on), which moved this
    # reference by 1e-4 on a few near-kink weights.
    single = tmp_path / "single.npz"
    done = subprocess.run([*command[:-1], str(single), "--single"], cwd=ROOT, timeout=300,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    got, want = saved_weights(out), saved_weights(single)
    assert len(got) == len(want) > 30
    # Adam moves a weight by about lr whatever its gradient's size, so a gradient summed in
    # another order can move a near-zero weight differently: within 0.1·lr (as the sync-BN test).
    lr = 6e-4  # NS3L's preset
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=0.1 * lr)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("whole") / "run"
    codes = wait_all(start_workers(train_command(logdir), logdir.parent))
    assert codes == [0, 0], (logdir.parent / "worker0.log").read_text()[-3000:]
    return logdir


def test_only_the_chief_writes_the_run(uninterrupted):
    record = json.loads((uninterrupted / "results.json").read_text())
    assert record["finished"] and [h["step"] for h in record["history"]] == [10, 20, 30, 40]
    assert record["config"]["strategy"] == "multi_worker"
    assert sorted(p.name for p in uninterrupted.iterdir() if not p.name.startswith("events")) == [
        ".lock", "checkpoints", "config.json", "results.json", "split.json",
    ]  # fmt: skip
    assert len(list(uninterrupted.glob("events.out.tfevents.*"))) == 1  # the chief's only
    assert not list(uninterrupted.parent.glob("ns3l-worker1-*"))  # worker 1's scratch: gone


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["SIGKILL of worker 1", "SIGTERM to worker 1"])
def test_a_run_whose_worker_dies_or_is_preempted_resumes_from_the_chiefs_checkpoint(
    fault, uninterrupted, tmp_path
):
    logdir = tmp_path / "run"
    workers = start_workers(train_command(logdir), tmp_path)
    wait_for(lambda: (logdir / "checkpoints" / "ckpt-10.index").exists())
    if fault.startswith("SIGKILL"):
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait(timeout=60)
        # The chief's next collective fails once the peer's heartbeats stop: one line, exit 4.
        assert workers[0].wait(timeout=120) == 4
        last = (tmp_path / "worker0.log").read_text().strip().splitlines()[-1]
        assert last.startswith(
            "error: a worker of this multi-worker run stopped (lost "
            "/job:worker/replica:0/task:1); start every worker again"
        ), last
        assert len(list(tmp_path.glob("ns3l-worker1-*"))) == 1  # the killed worker's scratch
    else:
        workers[1].send_signal(signal.SIGTERM)
        # Both agree to stop at the same step and save it there: the preempted one and its peer.
        assert wait_all(workers, timeout=120) == [128 + signal.SIGTERM] * 2
        stopped = json.loads((logdir / "results.json").read_text())["step"]
        assert (logdir / "checkpoints" / f"ckpt-{stopped}.index").exists() and stopped >= 10
    codes = wait_all(start_workers(train_command(logdir), tmp_path))
    assert codes == [0, 0], (tmp_path / "worker0.log").read_text()[-3000:]
    assert not list(tmp_path.glob("ns3l-worker1-*"))  # reused and removed by the restart
    got = json.loads((logdir / "results.json").read_text())
    want = json.loads((uninterrupted / "results.json").read_text())
    assert got["finished"] and got["history"] == want["history"]


@pytest.mark.slow
def test_two_slurm_tasks_find_each_other_and_train_the_same_run(slurm_cluster, uninterrupted):
    """`srun --ntasks=2` on the local Slurm cluster, no $TF_CONFIG: the cluster comes from
    SlurmClusterResolver, and the run equals the $TF_CONFIG one."""
    logdir = uninterrupted.parent / "slurm"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("SLURM")}
    env |= {"PYTHONPATH": str(ROOT), "TMPDIR": str(uninterrupted.parent)}
    done = subprocess.run(["srun", "--ntasks=2", "--nodes=1", "--cpus-per-task=1",
                           *train_command(logdir)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("step 40/40") == 1  # only the chief prints progress
    got = json.loads((logdir / "results.json").read_text())
    want = json.loads((uninterrupted / "results.json").read_text())
    assert got["finished"] and got["history"] == want["history"]
    assert got["config"]["strategy"] == "multi_worker"


FIXMATCH = ["--method=fixmatch+ns3l", "--dataset=digits", "--batch=128", "--uratio=2",
            "--train_kimg=3", "--report_kimg=1", "--filters=4", "--repeat=1", "--bn_momentum=0.9",
            "--ema=0.9", "--lr=0.1", "--augment_workers=1", "--deterministic", "--sync_bn",
            "--strategy=multi_worker"]  # fmt: skip


def cta_rates(checkpoints: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(checkpoints))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("cta_rates/")]
    return {name: reader.get_tensor(name) for name in names}


def test_fixmatch_workers_learn_one_set_of_ctaugment_rates_and_resume(tmp_path):
    """Each worker builds every row's views and probes and scores the probes with the same EMA
    weights, so both hold the same CTAugment rates: worker 1's checkpoint (its scratch, left by
    a SIGKILL) equals the chief's. The run resumes to the uninterrupted run's history."""
    command = [sys.executable, "-m", "fixmatch.train", *FIXMATCH]
    whole = tmp_path / "whole"
    assert wait_all(start_workers([*command, f"--logdir={whole}/run"], whole.parent)) == [0, 0]
    logdir = tmp_path / "cut" / "run"
    logdir.parent.mkdir()
    workers = start_workers([*command, f"--logdir={logdir}"], logdir.parent)
    wait_for(lambda: (logdir / "checkpoints" / "ckpt-9.index").exists())
    scratch = lambda: list(logdir.parent.glob("ns3l-worker1-*/checkpoints/ckpt-9.index"))  # noqa: E731
    wait_for(lambda: bool(scratch()))
    workers[1].send_signal(signal.SIGKILL)
    workers[1].wait(timeout=60)
    assert workers[0].wait(timeout=120) == 4
    chief = cta_rates(logdir / "checkpoints" / "ckpt-9")
    other = cta_rates(scratch()[0].parent / "ckpt-9")
    assert chief.keys() == other.keys() and len(chief) == 3  # update count, steps, values
    (values,) = [v for name, v in chief.items() if name.startswith("cta_rates/values")]
    assert not np.all(values == 1.0)  # 9 steps of probes moved them
    for name, value in chief.items():
        np.testing.assert_array_equal(other[name], value, err_msg=name)
    codes = wait_all(start_workers([*command, f"--logdir={logdir}"], logdir.parent))
    assert codes == [0, 0], (logdir.parent / "worker0.log").read_text()[-3000:]
    got = json.loads((logdir / "results.json").read_text())
    want = json.loads((whole / "run" / "results.json").read_text())
    assert got["finished"] and got["step"] == 24 and got["history"] == want["history"]
