"""What a run does about faults: one process per logdir, an unwritable logdir, litter from killed
runs, SIGTERM and SIGINT, and divergence (docs/runs.md, "Faults").

`claim_logdir` is the first thing a run does: it checks that the logdir is writable, takes an
exclusive lock on it for the run's life (the OS releases it when the process dies, however it
dies) and removes what killed runs leave behind. `StopSignals` turns SIGTERM (how clusters
preempt) and SIGINT into a request the loop honours after the current compiled call: it saves a
checkpoint and raises `Stopped`. `Diverged` names the first step whose loss was not finite."""

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ns3l.errors import UsageError

LOCK_FILE = ".lock"
FAULT_ENV = "NS3L_FAULT"  # tests: "<point>@<step>" sends the run SIGKILL there (`fault_point`)


class Stopped(Exception):  # noqa: N818 (a stop request, not an error)
    """The run saved a checkpoint at `step` and stopped because of signal `signum`."""

    def __init__(self, signum: int, step: int, logdir: str) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} at step {step}: checkpoint saved in {logdir}; the same command "
            "resumes"
        )
        self.signum, self.step = signum, step


class Diverged(Exception):  # noqa: N818 (a finding about the run, reported in one line)
    """The loss (or a weight) of step `step` was not finite; results.json says `diverged`."""

    def __init__(self, step: int, what: str, logdir: str) -> None:
        subject = {"loss": "the loss", "weights": "a weight"}[what]
        super().__init__(
            f"diverged: {subject} was not finite at step {step}; {logdir}/results.json marks the "
            "run diverged and its last finite checkpoint stays (try a smaller --lr)"
        )
        self.step, self.what = step, what


class WorkerLost(Exception):  # noqa: N818 (a finding about the cluster, reported in one line)
    """A multi-worker run lost a peer (crashed, killed, preempted); the run's checkpoints stay."""

    def __init__(self, detail: str, logdir: str) -> None:
        super().__init__(
            f"a worker of this multi-worker run stopped ({detail}); start every worker again "
            f"with the same command: the run resumes from its last checkpoint in {logdir}"
        )


@contextlib.contextmanager
def claim_logdir(logdir: str | os.PathLike) -> Iterator[None]:
    """For the `with` block: `logdir` exists, is writable, is this process's alone, and holds no
    temporary files of an earlier, killed run. One-line UsageErrors otherwise."""
    path = Path(logdir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--logdir={logdir} is a file: expected a directory (new, or a run's)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise UsageError(f"--logdir={logdir}: cannot write there ({reason})") from None
    with _locked(path):
        remove_litter(path)
        yield


@contextlib.contextmanager
def _locked(logdir: Path) -> Iterator[None]:
    lock = open(logdir / LOCK_FILE, "a+")  # noqa: SIM115 (held open for the run's life)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise UsageError(
                f"{logdir} is in use by {holder}: one run per logdir; wait for it or stop it"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(
            f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%F %T')}"
        )
        lock.flush()
        yield
    finally:
        lock.close()  # releases the lock


def remove_litter(logdir: Path) -> list[Path]:
    """Deletes what a killed run leaves: TensorFlow's `checkpoints/ckpt-N_temp/` directories and
    the `.<name>.*.tmp` files of interrupted atomic writes. Returns what it removed."""
    litter = [*logdir.glob("checkpoints/*_temp"), *logdir.glob(".*.tmp")]
    for path in litter:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return litter


class StopSignals:
    """A context manager: while inside, SIGTERM and SIGINT set `signum` instead of killing the
    process (a second SIGINT does interrupt at once). Outside the main thread it does nothing.
    Under multi-worker training `requested` is true on every worker once one was signalled."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, strategy: object = None) -> None:
        self.signum: int | None = None
        self.strategy = strategy
        self._previous: dict[int, object] = {}

    def requested(self) -> int | None:
        """The signal to stop for, agreed by all workers: this process's, SIGTERM for a worker
        that stops because another was signalled, None to go on."""
        from ns3l.training.distribute import any_worker  # TensorFlow, only once training runs

        if self.strategy is None:
            return self.signum
        if any_worker(self.strategy, self.signum is not None):
            return self.signum or signal.SIGTERM
        return None

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum
        print(
            f"\n{signal.Signals(signum).name}: saving a checkpoint after this step "
            "(Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def fault_point(name: str, step: int) -> None:
    """Sends this process SIGKILL if $NS3L_FAULT is `<name>@<step>`: how the tests kill a real
    run in a chosen window (e.g. between a checkpoint and its results.json). A no-op otherwise."""
    if os.environ.get(FAULT_ENV) == f"{name}@{step}":
        os.kill(os.getpid(), signal.SIGKILL)
