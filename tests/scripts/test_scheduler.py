"""GPU assignment: every job runs once, never two at once on one GPU, with its GPU visible."""

import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

from scripts import scheduler

NVIDIA_SMI = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d8c2b1e-0000-0000-0000-000000000000)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-5d8c2b1e-0000-0000-0000-000000000001)
GPU 3: NVIDIA A100-SXM4-40GB (UUID: GPU-5d8c2b1e-0000-0000-0000-000000000003)
"""


def test_gpu_lists():
    assert scheduler.gpus_from_nvidia_smi(NVIDIA_SMI) == ["0", "1", "3"]
    assert scheduler.gpus_from_nvidia_smi("") == []
    assert scheduler.parse_gpus("0, 1,3") == ["0", "1", "3"]
    assert scheduler.parse_gpus("") == scheduler.parse_gpus("none") == []


class FakeRunner:
    """Records, per job, the GPU it saw and when it ran; fails the job named in `fail`."""

    def __init__(self, seconds: float, fail: str = "") -> None:
        self.seconds, self.fail = seconds, fail
        self.calls: list[tuple[str, str | None, float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, argv, env, log) -> int:
        start = time.monotonic()
        time.sleep(self.seconds)
        with self.lock:
            self.calls.append((argv[0], env.get("CUDA_VISIBLE_DEVICES"), start, time.monotonic()))
        return 1 if argv[0] == self.fail else 0


def jobs(n: int, tmp_path: Path) -> list[scheduler.Job]:
    return [scheduler.Job(f"run{i}", (f"run{i}",), tmp_path / f"run{i}.log") for i in range(n)]


def test_five_runs_over_two_gpus_never_share_one(tmp_path):
    runner = FakeRunner(seconds=0.2, fail="run3")
    lines = []
    codes = scheduler.run_all(jobs(5, tmp_path), ["0", "1"], runner, echo=lines.append)
    assert codes == [0, 0, 0, 1, 0]
    assert sorted(name for name, *_ in runner.calls) == [f"run{i}" for i in range(5)]
    assert {gpu for _, gpu, *_ in runner.calls} == {"0", "1"}
    for gpu in ("0", "1"):
        spans = sorted((start, end) for _, g, start, end in runner.calls if g == gpu)
        assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))
    # Two GPUs: 5 jobs of 0.2 s take 3 rounds, not 5.
    first = min(start for *_, start, _ in runner.calls)
    last = max(end for *_, end in runner.calls)
    assert last - first < 0.2 * 4.5
    assert sum("FAILED (exit 1" in line for line in lines) == 1 and len(lines) == 10


def test_without_gpus_one_run_at_a_time_and_the_environment_untouched(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    runner = FakeRunner(seconds=0.05)
    assert scheduler.run_all(jobs(3, tmp_path), [], runner, echo=lambda line: None) == [0, 0, 0]
    assert [name for name, *_ in runner.calls] == ["run0", "run1", "run2"]
    assert {gpu for _, gpu, *_ in runner.calls} == {None}
    spans = [(start, end) for *_, start, end in runner.calls]
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))


def test_subprocess_runner_sets_the_gpu_and_appends_to_the_log(tmp_path):
    code = "import os, sys; print('gpu', os.environ['CUDA_VISIBLE_DEVICES']); sys.exit({})"
    job_list = [
        scheduler.Job(f"job{i}", (sys.executable, "-c", code.format(i % 2)), tmp_path / f"{i}/log")
        for i in range(4)
    ]
    codes = scheduler.run_all(job_list, ["2", "5"], scheduler.SubprocessRunner(), lambda _: None)
    assert codes == [0, 1, 0, 1]
    logs = [(tmp_path / f"{i}/log").read_text().splitlines() for i in range(4)]
    assert [log[-1] for log in logs] == ["== exit 0", "== exit 1", "== exit 0", "== exit 1"]
    gpus = [log[-2] for log in logs]
    assert set(gpus) <= {"gpu 2", "gpu 5"}
    scheduler.SubprocessRunner()((sys.executable, "-c", code.format(0)), {"CUDA_VISIBLE_DEVICES":
                                 "7"}, tmp_path / "0/log")  # fmt: skip
    log = (tmp_path / "0/log").read_text()
    assert log.count("CUDA_VISIBLE_DEVICES=") == 2
    assert log.splitlines()[-2:] == ["gpu 7", "== exit 0"]
