"""Logging of a run: TensorBoard scalars through `tf.summary`, and a console progress line.

Tags are the caller's (MixMatch logs `losses/xe`, `accuracy`; mixmatch.md §3.5, §4)."""

import math
import os
import time
from collections.abc import Callable, Mapping

import tensorflow as tf

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


def format_progress(
    step: int,
    total_steps: int,
    *,
    elapsed_seconds: float,
    batch_size: int,
    first_step: int = 0,
    losses: Mapping[str, float | Tensor] | None = None,
    eval_error: float | None = None,
    wall_seconds: float | None = None,
) -> str:
    """`step 1000/200000  1000 img/s  xent 0.6931  error 12.34%  elapsed 1m40s  ETA 5h31m40s`.

    The rate is over the `step - first_step` steps since `first_step` in `elapsed_seconds`;
    `batch_size` is the images one step counts. `eval_error` is a percentage, like the papers'
    error rates. `wall_seconds`: the time since the process started training, shown as elapsed."""
    steps_per_second = (step - first_step) / elapsed_seconds if elapsed_seconds > 0 else 0.0
    parts = [f"step {step}/{total_steps}"]
    parts.append(f"{steps_per_second * batch_size:.0f} img/s" if steps_per_second else "? img/s")
    parts += [f"{name} {float(value):.4g}" for name, value in (losses or {}).items()]
    if eval_error is not None:
        parts.append(f"error {eval_error:.2f}%")
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
    printed. The latest `eval_error` given is repeated until a newer one arrives."""

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
        self._eval_error: float | None = None

    def update(
        self,
        step: int,
        losses: Mapping[str, float | Tensor] | None = None,
        eval_error: float | None = None,
        *,
        force: bool = False,
    ) -> str | None:
        """Prints and returns the line when due (or `force`, e.g. at the last step), else None."""
        if eval_error is not None:
            self._eval_error = float(eval_error)
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
            eval_error=self._eval_error,
            wall_seconds=now - self._start,
        )
        self._write(line)
        return line
