"""`results.json`: what a finished (or evaluated) run reports, written so a reader never sees half.

Both stacks write one per run; `scripts/report.py` reads them to build the paper's tables. Fields
and their meaning: docs/runs.md."""

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_FILE = "results.json"
# What every results.json holds; the stacks may add more (e.g. per-evaluation curves).
REQUIRED_FIELDS = ("config", "seed", "dataset", "split_sizes", "step", "metrics")


def to_json_types(value: Any) -> Any:
    """`value` with numpy scalars/arrays (and eager tensors) turned into Python numbers and lists,
    tuples into lists and mapping keys into strings; anything else is left for json to accept or
    reject."""
    if isinstance(value, Mapping):
        return {str(key): to_json_types(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_types(item) for item in value]
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if hasattr(value, "__array__"):
        # An eager tf.Tensor (e.g. a metric straight from a step): numpy() on the host first.
        return np.asarray(value).tolist()
    return value


def write_json_atomically(path: str | os.PathLike, data: Any) -> Path:
    """Writes `data` (converted by `to_json_types`) to `path` through a temporary file in the same
    directory and `os.replace`, so `path` holds either the old or the new content, never a part."""
    path = Path(path)
    # Serialise before touching the disk: an unserialisable value leaves the old file as it was.
    text = json.dumps(to_json_types(data), indent=2, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_results(logdir: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Writes `<logdir>/results.json` atomically and returns its path.

    `results` holds at least REQUIRED_FIELDS: the resolved configuration, seed, data set, split
    sizes, the step the numbers belong to and the stack's headline metrics (docs/runs.md)."""
    missing = [field for field in REQUIRED_FIELDS if field not in results]
    if missing:
        raise ValueError(f"results.json needs {', '.join(missing)} (has {', '.join(results)})")
    return write_json_atomically(Path(logdir) / RESULTS_FILE, results)


def read_results(logdir: str | os.PathLike) -> dict[str, Any]:
    """The content of `<logdir>/results.json`."""
    return json.loads((Path(logdir) / RESULTS_FILE).read_text())
