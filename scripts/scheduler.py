"""Runs commands over the GPUs it finds, one command per GPU at a time, or one at a time on CPU.

Each GPU gets a worker thread that takes the next command from a shared queue and runs it with
`CUDA_VISIBLE_DEVICES=<gpu>`, so two commands never share a GPU and a GPU never idles while
commands wait. How a command runs is injectable (`Runner`), which is how the tests check the
assignment with fake commands."""

import ctypes
import functools
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """One command: a name for the progress lines, its argv, and the file its output goes to."""

    name: str
    argv: tuple[str, ...]
    log: Path


# argv, environment, log file -> exit status.
Runner = Callable[[Sequence[str], Mapping[str, str], Path], int]


class SubprocessRunner:
    """Runs each command as a child process, output appended to its log; `terminate` stops the
    ones still running (the sweep was interrupted: their checkpoints let them resume)."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def __call__(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            gpu = env.get("CUDA_VISIBLE_DEVICES", "unset")
            out.write(f"\n== {time.strftime('%F %T')} CUDA_VISIBLE_DEVICES={gpu}\n")
            out.write(" ".join(argv) + "\n")
            out.flush()
            child = subprocess.Popen(
                argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd,
                preexec_fn=die_with_parent,
            )  # fmt: skip
            with self.lock:
                self.running.add(child)
            try:
                code = child.wait()
                out.write(f"== exit {code}\n")  # what `sweep status` reads
                return code
            finally:
                with self.lock:
                    self.running.discard(child)

    def terminate(self) -> None:
        with self.lock:
            for child in self.running:
                child.terminate()


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the sweep dies, however it dies (Linux's
    PR_SET_PDEATHSIG), so a SIGKILLed sweep leaves no trainer behind; the trainer checkpoints
    on SIGTERM, and the restarted sweep resumes it. Elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def parse_gpus(text: str) -> list[str]:
    """`GPUS` / `--gpus`: `0,1,3` -> ["0", "1", "3"]; empty, `none` or `cpu` -> [] (CPU)."""
    if text.strip().lower() in ("", "none", "cpu"):
        return []
    return [gpu.strip() for gpu in text.split(",") if gpu.strip()]


def gpus_from_nvidia_smi(listing: str) -> list[str]:
    """The indices in `nvidia-smi -L` output (`GPU 0: NVIDIA A100 (UUID: GPU-...)` per line)."""
    return re.findall(r"^GPU (\d+):", listing, flags=re.MULTILINE)


def detect_gpus() -> list[str]:
    """The local GPUs by `nvidia-smi -L`; [] when it is missing or fails (then: CPU)."""
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return gpus_from_nvidia_smi(listing.stdout)


def run_all(
    jobs: Sequence[Job],
    gpus: Sequence[str],
    runner: Runner,
    echo: Callable[[str], None] | None = None,
) -> list[int | None]:
    """Runs every job, one per GPU at a time (one at a time in all without GPUs); returns each
    job's exit status in order, None for jobs an interruption (Ctrl-C) left unstarted."""
    echo = echo or functools.partial(print, flush=True)  # progress lines show up in a log file
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(jobs)):
        pending.put(index)
    codes: list[int | None] = [None] * len(jobs)
    stop = threading.Event()

    def worker(gpu: str | None) -> None:
        # Without GPUs the environment is left as it is: TensorFlow then runs on the CPU.
        env = dict(os.environ) | ({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {})
        device = "CPU" if gpu is None else f"GPU {gpu}"
        while not stop.is_set():
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            job, start = jobs[index], time.monotonic()
            echo(f"[{index + 1}/{len(jobs)}] {device}: start {job.name}")
            codes[index] = runner(job.argv, env, job.log)
            took = _duration(time.monotonic() - start)
            outcome = "done" if codes[index] == 0 else f"FAILED (exit {codes[index]}, {job.log})"
            echo(f"[{index + 1}/{len(jobs)}] {device}: {outcome} {job.name} in {took}")

    workers = [
        threading.Thread(target=worker, args=(gpu,), daemon=True) for gpu in (list(gpus) or [None])
    ]
    for thread in workers:
        thread.start()
    try:
        for thread in workers:
            while thread.is_alive():
                thread.join(timeout=0.5)  # a timed join lets Ctrl-C reach this thread
    except KeyboardInterrupt:
        stop.set()
        if hasattr(runner, "terminate"):
            runner.terminate()
        raise
    return codes


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
