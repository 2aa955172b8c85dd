"""What produced a results.json: the code (git commit, uncommitted changes), the library versions,
the devices and the host, and when this process ran (docs/runs.md)."""

import functools
import importlib.metadata
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

PROCESS_START = time.time()  # when this process imported the run machinery
CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGES = ("tensorflow", "keras", "tensorflow-datasets", "numpy", "ns3l-tf")


def provenance() -> dict:
    """The provenance record: static facts (cached) and this process's times."""
    now = time.time()
    return _static() | {
        "process_started": _iso(PROCESS_START),
        "written": _iso(now),
        "process_wall_seconds": round(now - PROCESS_START, 1),
    }


@functools.cache
def _static() -> dict:
    import tensorflow as tf  # the stacks have it loaded already

    devices = [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}"
               for d in tf.config.list_physical_devices()]  # fmt: skip
    gpus = [tf.config.experimental.get_device_details(d).get("device_name", "GPU")
            for d in tf.config.list_physical_devices("GPU")]  # fmt: skip
    return {
        "git": git_state(CHECKOUT),
        "versions": {"python": platform.python_version(), **package_versions(PACKAGES)},
        "devices": devices,
        "gpu_names": gpus,
        "cpu": _cpu_name(),
        "host": socket.gethostname(),
        "command": sys.argv,
    }


def git_state(directory: Path) -> dict | None:
    """{"commit": sha, "dirty": bool} of the git checkout at `directory`; None outside one (an
    installed wheel) or without git. Dirty: tracked files differ from the commit."""
    try:
        top = subprocess.run(["git", "-C", str(directory), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        if top.returncode or Path(top.stdout.strip()).resolve() != directory.resolve():
            return None  # not a checkout of its own (e.g. site-packages inside some repository)
        commit = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10)  # fmt: skip
        status = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))
