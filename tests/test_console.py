"""The commands' console: TensorFlow's C++ log lines filtered out of file descriptor 2 unless
--verbose, everything else passed on in order; a user's own script importing ns3l untouched."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
NATIVE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796358931.396605   16093 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796358946.731626   16128 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
    "W0000 00:00:1796358946.731626   16128 ring_alg.cc:291] Aborting RingReduce",
]
WRITER = """
import os, sys
from ns3l.training import console
assert os.environ.get("NS3L_NATIVE_LOGS") is None  # consumed: no child inherits it
native = {native!r}
os.write(2, ("\\n".join(native[:2]) + "\\nour line 1\\n").encode())
print("our line 2 (Python)", file=sys.stderr, flush=True)
os.write(2, (native[2] + "\\nF0000 00:00:17.1 1 x.cc:1] fatal passes\\n" + native[3]).encode())
os.write(2, b"\\nprompt> ")
"""


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "NS3L_NATIVE_LOGS"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=environment, timeout=120)  # fmt: skip


def test_the_filter_drops_native_lines_and_keeps_ours_in_order():
    done = run(WRITER.format(native=NATIVE), NS3L_NATIVE_LOGS="filter")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["our line 1", "our line 2 (Python)", "F0000 00:00:17.1 1 x.cc:1] fatal passes",
                     "prompt> "]  # fmt: skip


def test_a_users_own_import_of_ns3l_leaves_stderr_alone():
    done = run(WRITER.format(native=NATIVE))
    for line in NATIVE:
        assert line in done.stderr


def test_the_command_hides_tensorflows_lines_unless_verbose(tmp_path):
    # A bad flag value stops before TensorFlow loads; a --logdir that is a file stops after.
    command = [sys.executable, "-m", "realistic_ssl.train", "--method=ns3l", "--lr=-1"]
    quiet = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert quiet.returncode == 2
    assert quiet.stderr == "error: --lr=-1.0: expected a number > 0\n"  # the one line, alone
    (tmp_path / "file").write_text("")
    command = [*command[:-1], f"--logdir={tmp_path / 'file'}"]
    error = (
        f"error: --logdir={tmp_path / 'file'} is a file: expected a directory (new, or a run's)\n"
    )
    quiet = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert quiet.returncode == 2 and quiet.stderr == error  # TensorFlow loaded, and kept quiet
    loud = subprocess.run([*command, "--verbose"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)  # fmt: skip
    assert loud.returncode == 2 and loud.stderr.endswith(error)
    assert "before absl::InitializeLog()" in loud.stderr  # what TensorFlow 2.21 prints at import


HELP_PROBE = """
import runpy, sys
sys.argv = [{module!r}, "--help"]
try:
    runpy.run_module({module!r}, run_name="__main__")
finally:
    heavy = sorted(m for m in ("tensorflow", "keras", "tensorflow_datasets") if m in sys.modules)
    print("loaded:", heavy)
"""


def test_help_loads_no_tensorflow():
    for module in ("realistic_ssl.train", "mixmatch.train", "fixmatch.train", "scripts.demo"):
        done = run(HELP_PROBE.format(module=module))
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip().endswith("loaded: []"), done.stdout[-300:]
        assert "--method" in done.stdout
