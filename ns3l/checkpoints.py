"""Checkpoint and resume: the caller's trackables in `<logdir>/checkpoints/ckpt-<step>`, and
`<logdir>/config.json` so that a restart with other flags cannot silently continue another run.

Semantics (what is saved, the config check, mutable keys): docs/runs.md."""

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.results import to_json_types, write_json_atomically

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
_UNSET = object()  # a key one of the two configurations lacks


def check_config(
    logdir: str | os.PathLike, config: Mapping[str, Any], mutable_keys: Iterable[str] = ()
) -> None:
    """Writes `<logdir>/config.json` on a run's first start; on a restart, raises a UsageError
    naming every key (outside `mutable_keys`) whose value differs from the first start's."""
    path = Path(logdir) / CONFIG_FILE
    if not path.exists():
        write_json_atomically(path, config)
        return
    started = json.loads(path.read_text())
    # Through JSON and back, so a tuple here equals the list in the file.
    now = json.loads(json.dumps(to_json_types(config)))
    mutable = set(mutable_keys)
    differing = sorted(
        key
        for key in started.keys() | now.keys()
        if key not in mutable and started.get(key, _UNSET) != now.get(key, _UNSET)
    )
    if differing:
        raise UsageError(
            f"{logdir} was started with {_show(started, differing)}, this command has "
            f"{_show(now, differing)}; use a new --logdir or the original flags"
        )


def _show(config: Mapping[str, Any], keys: list[str]) -> str:
    """`lr=0.003, method="pi", wd unset`: the values of `keys` as they would appear in JSON."""
    return ", ".join(f"{k}={json.dumps(config[k])}" if k in config else f"{k} unset" for k in keys)


class RunCheckpoint:
    """Saves and restores the named `trackables` of one run, numbering checkpoints by step.

    The trackables are whatever the run must resume bitwise: Keras models (raw and EMA), the Keras
    optimizer (slots and `iterations`), a `tf.random.Generator`, plain tf.Variables or lists of
    them. Constructing it checks (or, on the first start, records) the configuration."""

    def __init__(
        self,
        logdir: str | os.PathLike,
        config: Mapping[str, Any],
        *,
        max_to_keep: int | None = 3,
        mutable_keys: Iterable[str] = (),
        **trackables: Any,
    ) -> None:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        check_config(logdir, config, mutable_keys)
        self._checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(
            self._checkpoint, str(Path(logdir) / CHECKPOINT_DIR), max_to_keep=max_to_keep
        )

    def save(self, step: int) -> str:
        """Writes `ckpt-<step>` (dropping the oldest beyond `max_to_keep`) and returns its prefix.
        The step is also the data position: input streams restart from it."""
        return self.manager.save(checkpoint_number=step)

    def restore_latest(self) -> int | None:
        """Restores the newest checkpoint into the trackables and returns its step; None (and
        nothing restored) on a fresh logdir."""
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        status = self._checkpoint.restore(path)
        try:
            # Strict both ways: a value nobody takes, or a variable nobody fills, is an error
            # rather than a resume that quietly restarts part of the state from scratch.
            status.assert_consumed()
        except AssertionError as error:
            status.expect_partial()  # the error lists what did not match; no second report at exit
            error.add_note(
                "Build every model and call optimizer.build(model.trainable_variables) before "
                "restore_latest(): Keras creates optimizer slots lazily."
            )
            raise
        return int(path.rpartition("-")[2])
