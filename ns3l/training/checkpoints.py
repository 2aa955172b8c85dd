"""Checkpoint and resume: the caller's trackables in `<logdir>/checkpoints/ckpt-<step>`, and
`<logdir>/config.json` so that a restart with other flags cannot silently continue another run.

Semantics (what is saved, the config check, mutable keys): docs/runs.md."""

import errno
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.results import to_json_types, write_json_atomically

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
    them. Every checkpoint also holds the run's evaluation history and its configuration
    (`config` without `mutable_keys`), so a restore rebuilds results.json and refuses another
    configuration's checkpoint. Constructing it checks (or, on the first start, records) the
    configuration in config.json."""

    def __init__(
        self,
        logdir: str | os.PathLike,
        config: Mapping[str, Any],
        *,
        max_to_keep: int | None = 3,
        mutable_keys: Iterable[str] = (),
        restore_from: str | os.PathLike | None = None,
        **trackables: Any,
    ) -> None:
        Path(logdir).mkdir(parents=True, exist_ok=True)
        check_config(logdir, config, mutable_keys)
        self.logdir, self.max_to_keep = Path(logdir), max_to_keep
        self.directory = self.logdir / CHECKPOINT_DIR
        # A multi-worker run's other workers save into a scratch logdir, and restore the chief's.
        self.restore_directory = Path(restore_from or logdir) / CHECKPOINT_DIR
        self.mutable = set(mutable_keys)
        self.config = _comparable(config, self.mutable)
        self.history: list[dict] = []  # the evaluations up to the restored checkpoint
        # String variables: the history as of each checkpoint, and the configuration it belongs to.
        self._history = tf.Variable("[]", dtype=tf.string, trainable=False)
        self._config = tf.Variable(json.dumps(self.config, sort_keys=True), dtype=tf.string,
                                   trainable=False)  # fmt: skip
        self._checkpoint = tf.train.Checkpoint(
            **trackables, run_history=self._history, run_config=self._config
        )
        self.manager = self._manager()

    def save(self, step: int, history: Sequence[Mapping] = ()) -> str:
        """Writes `ckpt-<step>` holding `history` (dropping the oldest beyond `max_to_keep`) and
        returns its prefix. The step is also the data position: input streams restart from it.
        A full disk is a one-line UsageError; the checkpoints before it stay as they were."""
        self._history.assign(json.dumps(to_json_types(list(history)), allow_nan=False))
        try:
            return self.manager.save(checkpoint_number=step)
        except (tf.errors.ResourceExhaustedError, OSError) as error:
            if isinstance(error, OSError) and error.errno != errno.ENOSPC:
                raise
            raise UsageError(
                f"no space left on {self.directory}: about {self._needed_mb()} MB needed for "
                f"max_to_keep + 1 = {(self.max_to_keep or 0) + 1} checkpoints; free some and rerun "
                "the same command, which resumes from the last complete one"
            ) from None

    def restore_latest(self) -> int | None:
        """Restores the newest checkpoint that restores into the trackables and returns its step;
        None (and nothing restored) on a fresh logdir. `history` then holds its evaluations.

        Checkpoints are found from their files, so a damaged or missing `checkpoint` state file
        loses nothing. A damaged newer checkpoint is skipped with a one-line warning on stderr;
        if none restores, or one was written by another configuration, a one-line UsageError."""
        damaged = []
        for step, prefix in self._candidates():
            try:
                self._check_fingerprint(prefix)
                status = self._checkpoint.restore(prefix)
            except UsageError:
                raise
            except (tf.errors.OpError, IndexError, ValueError) as error:
                damaged.append(f"{Path(prefix).name} ({_first_line(error)})")
                print(f"warning: {prefix} is damaged ({_first_line(error)}); trying an older "
                      "checkpoint", file=sys.stderr)  # fmt: skip
                continue
            self._assert_consumed(status)
            self.history = json.loads(self._history.numpy().decode())
            if self.restore_directory == self.directory:
                self._repair_state(step, prefix)
            return step
        if damaged:
            raise UsageError(
                f"no checkpoint in {self.restore_directory} restores: {', '.join(damaged)}; move "
                "them away to start the run over"
            )
        return None

    def _candidates(self) -> list[tuple[int, str]]:
        """(step, prefix) of every checkpoint with an index or a data file, newest first (one
        without its index is damaged, and is reported as such)."""
        found = set()
        for path in self.restore_directory.glob("ckpt-*"):
            number = path.name[len("ckpt-") :].split(".")[0]
            if number.isdigit() and path.is_file():
                found.add((int(number), str(self.restore_directory / f"ckpt-{number}")))
        return sorted(found, reverse=True)

    def _check_fingerprint(self, prefix: str) -> None:
        """A UsageError naming the differing keys if `prefix` holds another configuration."""
        reader = tf.train.load_checkpoint(prefix)
        key = "run_config/.ATTRIBUTES/VARIABLE_VALUE"
        if not reader.has_tensor(key):
            raise UsageError(
                f"{prefix} records no configuration (written by another program or an older "
                "version): use a new --logdir, or move its checkpoints away"
            )
        saved = json.loads(reader.get_tensor(key).decode())
        differing = sorted(
            k for k in saved.keys() | self.config.keys()
            if saved.get(k, _UNSET) != self.config.get(k, _UNSET)
        )  # fmt: skip
        if differing:
            raise UsageError(
                f"{prefix} was written by a run with {_show(saved, differing)}, this command has "
                f"{_show(self.config, differing)}; use a new --logdir or the original flags"
            )

    def _assert_consumed(self, status: Any) -> None:
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

    def _repair_state(self, restored_step: int, restored: str) -> None:
        """Rewrites the `checkpoint` state file to list the checkpoints on disk up to the restored
        one (a garbage or deleted state file is rebuilt), and reloads the manager from it."""
        kept = [prefix for step, prefix in sorted(self._candidates()) if step <= restored_step]
        # The text proto CheckpointManager reads (TF's writer of it is deprecated and says so).
        lines = [f'model_checkpoint_path: "{Path(restored).name}"']
        lines += [f'all_model_checkpoint_paths: "{Path(prefix).name}"' for prefix in kept]
        state = self.directory / "checkpoint"
        temporary = state.with_name(".checkpoint.tmp")
        temporary.write_text("\n".join(lines) + "\n")
        os.replace(temporary, state)
        self.manager = self._manager()

    def _manager(self) -> tf.train.CheckpointManager:
        """The manager of the checkpoint directory. An unreadable `checkpoint` state file is
        moved aside (with a warning): `restore_latest` finds the checkpoints from their files."""
        try:
            return tf.train.CheckpointManager(
                self._checkpoint, str(self.directory), max_to_keep=self.max_to_keep
            )
        except Exception as error:  # a text-format parse or decode error, whichever it is
            state = self.directory / "checkpoint"
            state.replace(state.with_name("checkpoint.unreadable"))
            print(f"warning: {state} is unreadable ({_first_line(error)}); the checkpoints are "
                  "found from their files", file=sys.stderr)  # fmt: skip
            return tf.train.CheckpointManager(
                self._checkpoint, str(self.directory), max_to_keep=self.max_to_keep
            )

    def _needed_mb(self) -> int:
        """The size of the largest checkpoint on disk times max_to_keep + 1, in MB (at least 1)."""
        sizes: dict[str, int] = {}
        for path in self.directory.glob("ckpt-*"):
            if path.is_file():
                number = path.name.split(".")[0]
                sizes[number] = sizes.get(number, 0) + path.stat().st_size
        largest = max(sizes.values(), default=0)
        return max(1, round(largest * ((self.max_to_keep or 0) + 1) / 2**20))


def _comparable(config: Mapping[str, Any], mutable: set[str]) -> dict:
    """`config` without the mutable keys, through JSON and back."""
    return {k: v for k, v in json.loads(json.dumps(to_json_types(config))).items()
            if k not in mutable}  # fmt: skip


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120]}" if text else type(error).__name__
