"""`results.json`: what a finished (or evaluated) run reports, written so a reader never sees half.

Both stacks write one per run; `scripts/report.py` reads them to build the paper's tables. Fields
and their meaning: docs/runs.md."""

import errno
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ns3l.errors import UsageError

RESULTS_FILE = "results.json"
# What every results.json holds; the stacks may add more (e.g. per-evaluation curves).
REQUIRED_FIELDS = ("config", "seed", "dataset", "split_sizes", "step", "metrics")


def to_json_types(value: Any) -> Any:
    """`value` with numpy scalars/arrays (and eager tensors) turned into Python numbers and lists,
    tuples into lists, mapping keys into strings and NaN or infinities into None (strict JSON has
    no NaN); anything else is left for json to accept or reject."""
    if isinstance(value, Mapping):
        return {str(key): to_json_types(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_types(item) for item in value]
    if isinstance(value, np.generic | np.ndarray) or hasattr(value, "__array__"):
        # numpy values, or an eager tf.Tensor (e.g. a metric straight from a step).
        return to_json_types(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomically(path: str | os.PathLike, data: Any) -> Path:
    """Writes `data` (converted by `to_json_types`) to `path` through a temporary file in the same
    directory and `os.replace`, so `path` holds either the old or the new content, never a part."""
    path = Path(path)
    # Serialise before touching the disk: an unserialisable value leaves the old file as it was.
    text = json.dumps(to_json_types(data), indent=2, sort_keys=True, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; a results file is as readable as any the user creates
        # (a lab's colleagues on a shared cluster read it): 0666 less the umask.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_results(logdir: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Writes `<logdir>/results.json` atomically and returns its path.

    `results` holds at least REQUIRED_FIELDS: the resolved configuration, seed, data set, split
    sizes, the step the numbers belong to and the stack's headline metrics (docs/runs.md)."""
    missing = [field for field in REQUIRED_FIELDS if field not in results]
    if missing:
        raise ValueError(f"results.json needs {', '.join(missing)} (has {', '.join(results)})")
    try:
        return write_json_atomically(Path(logdir) / RESULTS_FILE, results)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UsageError(
            f"no space left on {logdir} to write {RESULTS_FILE}: free some and rerun the same "
            "command, which rebuilds it from the last checkpoint"
        ) from None


def read_results(logdir: str | os.PathLike) -> dict[str, Any]:
    """The content of `<logdir>/results.json`."""
    return json.loads((Path(logdir) / RESULTS_FILE).read_text())


def read_json(path: str | os.PathLike) -> tuple[Any, str | None]:
    """(content, None), or (None, what is wrong) for a truncated, invalid or empty file: one
    line naming it, for a caller that skips it rather than stopping (the report, the sweep)."""
    try:
        return json.loads(Path(path).read_text()), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"{path} is unreadable ({type(error).__name__}: {error})"
