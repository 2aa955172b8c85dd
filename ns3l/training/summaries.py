"""Logging of a run: TensorBoard scalars and hyperparameters, and a console progress line.

Both stacks log the same tags (docs/runs.md#tensorboard): after train steps `loss/total`,
`loss/<term>` (weighted: the total is their sum), `loss_unweighted/<term>`, `weight/<term>` (the
term's weight at that step, ramp included) and `lr`; NS3L's `ns3l/negatives_per_row`; at each
evaluation `error/<split>` (`error/valid`, `error/test`, ...) in percent; and the run's settings
once per start, for TensorBoard's HParams table."""

import math
import os
import time
from collections.abc import Callable, Mapping

import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from ns3l.types import Tensor


class ScalarWriter:
    """One TensorBoard event file in `logdir`; `write(step, {"losses/xe": 0.69, ...})` from eager
    code after a step or an evaluation. A context manager that closes the file on exit."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        self._writer = tf.summary.create_file_writer(str(logdir))

    def write(self, step: int, scalars: Mapping[str, float | Tensor]) -> None:
        """Records every `tag: value` of `scalars` at `step`."""
        with self._writer.as_default(step=step):
            for tag, value in scalars.items():
                tf.summary.scalar(tag, value)

    def hparams(self, values: Mapping[str, object], run: str) -> None:
        """Records the run's settings for the HParams plugin (each value a bool, number or
        string; None as "None"), `run` naming the trial."""
        kept = {
            k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in values.items()
        }
        with self._writer.as_default(step=0):
            hparams_api.hparams(kept, trial_id=run)

    def flush(self) -> None:
        """Pushes buffered events to disk (TensorBoard shows nothing newer until then)."""
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file."""
        self._writer.close()

    def __enter__(self) -> "ScalarWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


SUMMARY_POINTS = 100  # a short run still draws a curve: at least this many points where it can


def summary_every(total_steps: int, most: int = 100) -> int:
    """Steps between loss summaries: every `most` steps (each one reads the device), or often
    enough for `SUMMARY_POINTS` points in a shorter run (200 steps: every 2)."""
    return max(1, min(most, total_steps // SUMMARY_POINTS))


def training_scalars(
    stats: Mapping[str, float | Tensor], weights: Mapping[str, float], lr: float
) -> dict[str, float]:
    """The tags of a train step: `stats` as the steps return them (`total`, each weighted term,
    `raw/<term>` unweighted, `count/...` not logged), `weights` each term's current weight."""
    values = {"loss/total": float(stats["total"])}
    for key, value in stats.items():
        if key.startswith("raw/"):
            values[f"loss_unweighted/{key.removeprefix('raw/')}"] = float(value)
        elif "/" not in key and key != "total":
            values[f"loss/{key}"] = float(value)
    values |= {f"weight/{term}": float(weight) for term, weight in weights.items()}
    return values | {"lr": float(lr)}


def evaluation_scalars(entry: Mapping[str, object]) -> dict[str, float]:
    """`error/<split>` of an evaluation's `<split>_error` entries (None: not evaluated then)."""
    return {
        f"error/{key.removesuffix('_error')}": float(value)
        for key, value in entry.items()
        if key.endswith("_error") and value is not None
    }


def format_progress(
    step: int,
    total_steps: int,
    *,
    elapsed_seconds: float,
    batch_size: int,
    first_step: int = 0,
    losses: Mapping[str, float | Tensor] | None = None,
    errors: Mapping[str, float] | None = None,
    wall_seconds: float | None = None,
) -> str:
    """`step 1000/200000  1000 img/s  xe 0.6931  valid_error 12.34%  elapsed 1m40s  ETA 5h31m40s`.

    The rate is over the `step - first_step` steps since `first_step` in `elapsed_seconds`;
    `batch_size` is the images one step counts. `errors` are percentages by name (`valid_error`,
    `test_error`: the names results.json uses, in both stacks), like the papers' error rates.
    `wall_seconds`: the time since the process started training, shown as elapsed."""
    steps_per_second = (step - first_step) / elapsed_seconds if elapsed_seconds > 0 else 0.0
    parts = [f"step {step}/{total_steps}"]
    parts.append(f"{steps_per_second * batch_size:.0f} img/s" if steps_per_second else "? img/s")
    parts += [f"{name} {float(value):.4g}" for name, value in (losses or {}).items()]
    parts += [f"{name} {value:.2f}%" for name, value in (errors or {}).items()]
    remaining = max(total_steps - step, 0) / steps_per_second if steps_per_second else math.nan
    if wall_seconds is not None:
        parts.append(f"elapsed {format_duration(wall_seconds)}")
    parts.append(f"ETA {format_duration(remaining)}")
    return "  ".join(parts)


def format_duration(seconds: float) -> str:
    """`5h31m40s`, `2m05s`, `7s`; `?` when not finite (no rate yet)."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def print_now(line: str) -> None:
    """print, flushed: progress lines reach a log file (a sweep's train.log) as they happen."""
    print(line, flush=True)


def print_nothing(line: str) -> None:
    """The progress of a multi-worker run's other workers: the chief's lines are the run's."""


class ProgressPrinter:
    """Prints `format_progress`: at the first call, then after 10, 20, 40 s, ..., at most every
    `every_seconds` (first lines soon, then a steady cadence), and when forced.

    The rate (and so the ETA) counts from the first call on: the first compiled call includes
    tracing and compilation, which would inflate the first ETA many times over. Call `update`
    after every step: losses may be tensors, and are only read on the host when a line is
    printed. The latest of each error given is repeated until a newer one arrives."""

    FIRST_GAP = 10.0  # seconds between the first two lines; doubled after each line

    def __init__(
        self,
        total_steps: int,
        batch_size: int,
        *,
        every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], object] = print_now,
    ) -> None:
        self.total_steps, self.batch_size = total_steps, batch_size
        self.every_seconds, self._clock, self._write = every_seconds, clock, write
        self._start = clock()
        self._last_print = -math.inf
        self._gap = self.FIRST_GAP
        self._anchor: tuple[float, int] | None = None  # (time, step) of the first call
        self._errors: dict[str, float] = {}

    def update(
        self,
        step: int,
        losses: Mapping[str, float | Tensor] | None = None,
        errors: Mapping[str, float | None] | None = None,
        *,
        force: bool = False,
    ) -> str | None:
        """Prints and returns the line when due (or `force`, e.g. at the last step), else None.
        `errors` (an evaluation's, by name; None: not evaluated then) update the latest ones."""
        for name, value in (errors or {}).items():
            if value is not None:
                self._errors[name] = float(value)
        now = self._clock()
        if self._anchor is None:  # the first call: the rate counts from here
            self._anchor = (now, step)
        else:
            if not force and now - self._last_print < min(self._gap, self.every_seconds):
                return None
            self._gap *= 2
        self._last_print = now
        anchor_time, anchor_step = self._anchor
        line = format_progress(
            step,
            self.total_steps,
            elapsed_seconds=now - anchor_time,
            batch_size=self.batch_size,
            first_step=anchor_step,
            losses=losses,
            errors=self._errors,
            wall_seconds=now - self._start,
        )
        self._write(line)
        return line
