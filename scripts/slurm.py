"""A sweep's runs on a Slurm cluster, through submitit: one job array, one run per array task.

Each task runs the same training command the local executor runs, in the same run directory, so
the sweep's skipping, resuming and conflict detection are unchanged (docs/reproducing.md).

Preemption and time limits use submitit's checkpointing protocol. Slurm signals a task before its
time limit (submitit asks for `--signal=USR2@<delay>`); submitit calls `TrainTask.checkpoint`,
which sends the trainer SIGTERM, waits while it saves a checkpoint of its current step
(`ns3l.training.faults.StopSignals`), and hands submitit the same task to requeue. A trainer that
Slurm signals itself (`scancel --signal=TERM`, a preemption) saves and exits with 128 + 15; the task
then asks submitit for the same requeue. Every requeue resumes from the trainer's checkpoint, so
a run's progress survives any number of them."""

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import submitit
from submitit.core.job_environment import JobEnvironment

from ns3l.errors import UsageError

STOPPED = 128 + signal.SIGTERM  # a trainer that saved a checkpoint after SIGTERM exits with it
# Exit codes after which the same task is requeued: STOPPED, and death by SIGTERM, which only a
# trainer still starting (importing, loading data) meets: it had no step to lose.
REQUEUED = (STOPPED, -signal.SIGTERM)
# Requeues after a time limit that submitit allows (a preemption does not count): enough for a
# 200,000-step run in 24-hour slices on a slow GPU.
MAX_TIMEOUTS = 100


@dataclass(frozen=True)
class SlurmOptions:
    """What each array task asks Slurm for (`--slurm_*` flags of the sweep)."""

    partition: str | None = None
    gpus_per_run: int = 1
    time_minutes: int = 24 * 60
    max_parallel: int = 256
    account: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # slurm_additional_parameters

    def executor_parameters(self) -> dict:
        """`submitit.AutoExecutor.update_parameters` keywords."""
        given = {
            "timeout_min": self.time_minutes,
            "gpus_per_node": self.gpus_per_run or None,  # 0: ask for none (a CPU cluster)
            "slurm_partition": self.partition,
            "slurm_array_parallelism": self.max_parallel,
            "slurm_account": self.account,
            "slurm_additional_parameters": dict(self.extra) or None,
        }
        return {k: v for k, v in given.items() if v is not None}

    def describe(self) -> str:
        """`partition gpu, 1 GPU, 1440 min, at most 8 at once, account lab, extra qos=high`."""
        parts = [
            f"partition {self.partition or '(the default)'}",
            f"{self.gpus_per_run} GPU{'s' * (self.gpus_per_run != 1)} per run",
            f"{self.time_minutes} min per task",
            f"at most {self.max_parallel} at once",
        ]
        if self.account:
            parts.append(f"account {self.account}")
        if self.extra:
            parts.append("extra " + ",".join(f"{k}={v}" for k, v in self.extra.items()))
        return ", ".join(parts)


def parse_extra(text: str | None) -> dict[str, str]:
    """`--slurm_extra=qos=high,constraint=a100` -> {"qos": "high", "constraint": "a100"}."""
    extra = {}
    for item in filter(None, (text or "").split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise UsageError(f"--slurm_extra={text!r}: expected key=value[,key=value...]")
        extra[key.strip()] = value.strip()
    return extra


class TrainTask(submitit.helpers.Checkpointable):
    """One run's training command, appending its output to `log`; requeued by submitit when
    stopped (module docstring). Returns 0; raises on a failed run."""

    def __init__(self, argv: Sequence[str], log: str) -> None:
        self.argv, self.log = tuple(argv), log
        self._child: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        return {"argv": self.argv, "log": self.log}  # a running process does not pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _child=None)

    def __call__(self) -> int:
        log = Path(self.log)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            job = os.environ.get("SLURM_JOB_ID", os.environ.get("SUBMITIT_LOCAL_JOB_ID", "?"))
            out.write(f"\n== {time.strftime('%F %T')} job {job}\n{' '.join(self.argv)}\n")
            out.flush()
            self._child = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
            # Poll rather than wait(): submitit's signal handler runs in this thread, and its
            # `checkpoint` waits for the child, which wait() would hold a lock against.
            while (code := self._child.poll()) is None:
                time.sleep(0.5)
            out.write(f"== exit {code}\n")
        if code == 0:
            return 0
        if code in REQUEUED:  # signalled by Slurm itself; its checkpoint is saved: requeue
            self._child = None  # its exit is written above
            os.kill(os.getpid(), JobEnvironment._usr_sig())
            time.sleep(60)  # submitit's handler requeues and exits meanwhile
        raise RuntimeError(f"exit {code}: see {self.log}")

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on its signal: the trainer saves and exits, then the same task is
        requeued."""
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.wait()
        if child is not None:
            with Path(self.log).open("a") as out:
                out.write(f"== exit {child.returncode} (requeued)\n")
        return submitit.helpers.DelayedSubmission(TrainTask(self.argv, self.log))


def submit(tasks: Sequence[TrainTask], to: submitit.Executor) -> list[submitit.Job]:
    """All `tasks` as one array (a single task is a single job), in executor `to` (Slurm, or
    submitit's local executor in the tests)."""
    with to.batch():
        jobs = [to.submit(task) for task in tasks]
    return jobs


def executor(folder: Path, options: SlurmOptions, name: str) -> submitit.Executor:
    """submitit's Slurm executor for jobs called `name`, writing its scripts and logs under
    `folder`; a one-line UsageError where Slurm's commands are missing."""
    try:
        made = submitit.AutoExecutor(
            folder=str(folder), cluster="slurm", slurm_max_num_timeout=MAX_TIMEOUTS
        )
    except (RuntimeError, ValueError) as error:
        raise UsageError(f"--executor=slurm: {error} (is sbatch on the PATH?)") from None
    made.update_parameters(name=name, **options.executor_parameters())
    return made
