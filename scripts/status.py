"""`python -m scripts.sweep status`: per table, which runs finished, run, wait, failed or never
started, the same for the local executor and Slurm (docs/reproducing.md).

A run is *running* while a process holds its logdir's lock (`ns3l.training.faults.claim_logdir`), or
while Slurm says its job (recorded in `<logdir>/slurm_job` at submission) is running; *queued* while
Slurm has it pending; *failed* when its train.log ends with a non-zero exit; the report's own
states otherwise."""

import fcntl
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ns3l.training.faults import LOCK_FILE
from ns3l.training.results import read_json

LOG_FILE = "train.log"  # each run's console output, appended on every start, in its logdir
SLURM_JOB_FILE = "slurm_job"  # the array task's job id, written when the sweep submits it
STATES = ("finished", "running", "queued", "failed", "diverged", "unfinished", "not started",
          "conflict")  # fmt: skip


def lock_held(logdir: Path) -> bool:
    """Whether a process holds `logdir`'s run lock now."""
    path = logdir / LOCK_FILE
    if not path.exists():
        return False
    with path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
    return False


def slurm_states(job_ids: Iterable[str]) -> dict[str, str]:
    """job id -> Slurm state (PENDING, RUNNING, ...) of the jobs `squeue` still knows; {} without
    Slurm."""
    ids = sorted(set(job_ids))
    if not ids or shutil.which("squeue") is None:
        return {}
    result = subprocess.run(
        ["squeue", "-h", "-o", "%i %T", "-j", ",".join(ids)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    states = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition(" ")
        states[job] = state
    return states


def last_exit(log: Path) -> tuple[int | None, str]:
    """(exit status of the log's last start or None if it has none yet, its last other line)."""
    if not log.exists():
        return None, ""
    lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines()]
    start = max((i for i, line in enumerate(lines) if line.startswith("== 20")), default=-1)
    code, message = None, ""
    for line in lines[start + 1 :]:
        if line.startswith("== exit "):
            code = int(line.split()[2])
        elif line.strip():
            message = line
    return code, message


def state(logdir: Path, slurm: dict[str, str]) -> tuple[str, str]:
    """(one of STATES, detail) of the run in `logdir`."""
    results = _results(logdir)
    if results.get("finished"):
        return "finished", ""
    if "diverged" in results:
        return "diverged", f"at step {results['diverged']['step']}"
    job_file = logdir / SLURM_JOB_FILE
    job = job_file.read_text().strip() if job_file.exists() else ""
    if lock_held(logdir) or slurm.get(job) in ("RUNNING", "COMPLETING", "CONFIGURING"):
        return "running", f"at step {results.get('step', 0)}" + (f", job {job}" if job else "")
    if job in slurm:
        return "queued", f"job {job} {slurm[job].lower()}"
    code, message = last_exit(logdir / LOG_FILE)
    if code not in (None, 0):
        return "failed", f"exit {code}: {message}"
    if results or (logdir / "config.json").exists():
        return "unfinished", f"at step {results.get('step', 0)}"
    return "not started", ""


def _results(logdir: Path) -> dict:
    """results.json's content, {} when it is missing or damaged."""
    path = logdir / "results.json"
    results = read_json(path)[0] if path.exists() else {}
    return results if isinstance(results, dict) else {}


def summary(
    name: str, logdirs: Sequence[Path], root: Path, conflicts: dict[Path, str] | None = None
) -> list[str]:
    """The lines of one table: counts per state, then one line per run that is neither
    finished nor not started. `conflicts`: logdirs holding another configuration (the sweep's
    check), with why."""
    conflicts = conflicts or {}
    jobs = [(d / SLURM_JOB_FILE).read_text().strip() for d in logdirs
            if (d / SLURM_JOB_FILE).exists()]  # fmt: skip
    slurm = slurm_states(jobs)
    states = [(d, "conflict", conflicts[d]) if d in conflicts else (d, *state(d, slurm))
              for d in logdirs]  # fmt: skip
    counts = Counter(s for _, s, _ in states)
    shown = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
    lines = [f"{name}: {len(logdirs)} runs: {shown}"]
    for logdir, kind, detail in states:
        if kind not in ("finished", "not started"):
            lines.append(f"  {kind}: {logdir.relative_to(root)} {detail}".rstrip())
    return lines
