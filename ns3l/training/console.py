"""What reaches the console of our commands: TensorFlow's C++ log lines filtered out, unless
`--verbose`.

TensorFlow 2.21 writes lines such as `I0000 00:00:... port.cc:153] oneDNN custom operations
are on` and, on a machine without a GPU, `E0000 ... failed call to cuInit: INTERNAL: CUDA
error` through absl's C++ logging before absl is initialised, and `TF_CPP_MIN_LOG_LEVEL` does
not silence those. So the commands route file descriptor 2 through a pipe read by a thread that
drops those lines and passes everything else on (Python's warnings and errors, tracebacks, our
own messages). Fatal (`F`) lines always pass. This module imports nothing heavy: it runs before
TensorFlow loads (`ns3l/__init__.py`)."""

import atexit
import os
import re
import sys
import threading

ENV = "NS3L_NATIVE_LOGS"  # "filter" (set by our commands) or "verbose"; unset: untouched
NATIVE_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] .*"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)$"
)
_PREFIX = re.compile(rb"^(?:[IWE]\d{0,4}( |$)|W(A(R(N(I(N(G(:.*)?)?)?)?)?)?)?$)")


def apply_from_environment() -> None:
    """Installs the filter once if $NS3L_NATIVE_LOGS says `filter` (our commands set it; a
    user's own script importing ns3l is left alone), and clears the variable so that no child
    process inherits it."""
    if os.environ.pop(ENV, None) == "filter" and not getattr(sys, "_ns3l_filtered", False):
        sys._ns3l_filtered = True
        filter_native_logs()


def filter_native_logs() -> None:
    """From now on, lines written to file descriptor 2 that match NATIVE_LINE are dropped."""
    read_end, write_end = os.pipe()
    original = os.dup(2)
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, original), daemon=True)
    pump.start()

    def restore() -> None:  # at exit: the last lines through, then fd 2 as it was
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # closes the pipe's write end: the pump reads the end
        pump.join(timeout=5)

    atexit.register(restore)


def _pump(read_end: int, out: int) -> None:
    pending = b""
    while chunk := os.read(read_end, 65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not NATIVE_LINE.match(line))
        if pending and not _PREFIX.match(pending):  # a prompt or partial line of ours: now
            kept, pending = kept + pending, b""
        if kept:
            os.write(out, kept)
    if pending and not NATIVE_LINE.match(pending):
        os.write(out, pending)
    os.close(read_end)
