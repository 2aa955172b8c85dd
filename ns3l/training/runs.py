"""The parts of a training run both stacks' loops share: the distributed step and how the loop
calls it (steps per call, profiling), evaluation in large batches, the evaluation history of a
resumed run, and the results.json record."""

import contextlib
import dataclasses
import functools
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ns3l.training import precision
from ns3l.training.checkpoints import RunCheckpoint
from ns3l.training.distribute import is_chief, make_strategy, peers_watched
from ns3l.training.faults import Diverged, Stopped, StopSignals, claim_logdir, fault_point
from ns3l.training.provenance import provenance
from ns3l.training.results import RESULTS_FILE, read_results, write_json_atomically, write_results
from ns3l.training.settings import RunConfig
from ns3l.training.splits import Split
from ns3l.training.summaries import print_nothing, print_now
from ns3l.types import Tensor

EVAL_BATCH = 1000  # large inference batches: evaluation is a small share of a run


def start_run(config: RunConfig) -> tf.distribute.Strategy:
    """What every run does first: the strategy `--strategy` names (a multi-worker one configures
    TensorFlow's collectives, so before anything else), then seed Keras (initial weights) and
    switch on op determinism if asked."""
    strategy = make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    return strategy


@contextlib.contextmanager
def running(
    config: RunConfig,
) -> Iterator[tuple[RunConfig, StopSignals, tf.distribute.Strategy, Callable[[str], None]]]:
    """Everything around one run's training in this process, for the `with` block: the
    strategy (`start_run`), the configuration this process writes with (`own_logdir`), the
    claimed logdir, stop signals agreed across workers, a lost worker as `WorkerLost`, and the
    console writer (only the chief prints). Yields (own config, stop, strategy, write)."""
    strategy = start_run(config)
    write = print_now if is_chief(strategy) else print_nothing
    with own_logdir(config, strategy) as own:
        with claim_logdir(own.logdir), StopSignals(strategy) as stop:
            with peers_watched(strategy, config.logdir):
                yield own, stop, strategy, write


@contextlib.contextmanager
def own_logdir(config: RunConfig, strategy: tf.distribute.Strategy) -> Iterator[RunConfig]:
    """The configuration this process trains with: `config` for the chief (the only process of
    a one-machine run); for another worker of a multi-worker run, `config` writing to a
    temporary directory, deleted afterwards. Checkpoint saves are collective, so every worker
    writes one, but only the chief's are the run's (TensorFlow's multi-worker guide)."""
    if is_chief(strategy):
        yield config
        return
    # One name per (run, task), emptied first: what a killed worker left is reused, not piled up.
    resolver = strategy.cluster_resolver
    run = hashlib.sha256(str(Path(config.logdir).resolve()).encode()).hexdigest()[:12]
    scratch = Path(tempfile.gettempdir()) / f"ns3l-{resolver.task_type}{resolver.task_id}-{run}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        yield dataclasses.replace(config, logdir=str(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def compiled_step(
    strategy: tf.distribute.Strategy, train_step: Callable[..., dict[str, Tensor]]
) -> Callable[[tuple[Tensor, ...]], dict[str, Tensor]]:
    """One tf.function: `train_step` on every replica for one (distributed) batch, its statistics
    summed over the replicas (each replica returns its share of the global value)."""
    return tf.function(functools.partial(_on_replicas, strategy, train_step))


def compiled_steps(
    strategy: tf.distribute.Strategy, train_step: Callable[..., dict[str, Tensor]]
) -> Callable[[Iterator, int, int], dict[str, Tensor]]:
    """One tf.function per run, `steps(iterator, count, first)`: `count` train steps, numbered
    from `first`, each on the next batch of the (distributed) `iterator`, in one call: one host
    round trip for `count` steps (`--steps_per_call`). Returns the last step's statistics. `count`
    is passed as a tensor, so any count runs the same trace. `run.first_nonfinite` (a variable,
    read without stopping the device only when the caller asks) holds the number of the first
    step whose `total` loss was not finite, or -1."""
    first_nonfinite = tf.Variable(-1, dtype=tf.int64, trainable=False)

    def note(stats: dict[str, Tensor], step: Tensor) -> None:
        bad = tf.logical_and(first_nonfinite < 0, ~tf.math.is_finite(stats["total"]))
        first_nonfinite.assign(tf.where(bad, step, first_nonfinite))

    @tf.function
    def steps(iterator: Iterator, count: Tensor, first: Tensor) -> dict[str, Tensor]:
        stats = _on_replicas(strategy, train_step, next(iterator))
        note(stats, first)
        # An int32 counter: with tf.range over int64, Grappler's AddOpsRewrite broke the loop
        # body on the CIFAR path (AlreadyExistsError on a TemporaryVariable).
        for i in tf.range(count - 1):
            stats = _on_replicas(strategy, train_step, next(iterator))
            note(stats, first + tf.cast(i + 1, tf.int64))
        return stats

    def run(iterator: Iterator, count: int = 1, first: int = 0) -> dict[str, Tensor]:
        return steps(iterator, tf.constant(count, tf.int32), tf.constant(first, tf.int64))

    run.function = steps  # the tf.function itself, e.g. for its tracing count
    run.first_nonfinite = first_nonfinite
    return run


def _on_replicas(
    strategy: tf.distribute.Strategy,
    train_step: Callable[..., dict[str, Tensor]],
    batch: tuple[Tensor, ...],
) -> dict[str, Tensor]:
    per_replica = strategy.run(train_step, args=batch)
    return {
        name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        for name, value in per_replica.items()
    }


def call_ranges(
    start: int,
    end: int,
    steps_per_call: int,
    every: Iterable[int],
    profile_step: int = 0,
    offset: int = 0,
) -> Iterator[tuple[int, int]]:
    """(first, last) step of each compiled call that takes a run from `start` to `end`.

    A call runs at most `steps_per_call` steps and ends on every multiple of each of `every`
    (where the loop logs, evaluates and checkpoints), and on every multiple plus `offset` (a
    stack that evaluates at steps 1, 1 + R, ...), so the loop sees each of those steps; the
    profiled step runs in a call of its own."""
    boundaries = [(n, shift) for n in every if n > 0 for shift in {0, offset}]
    first = start + 1
    while first <= end:
        last = min(
            [end, first + steps_per_call - 1]
            + [(first - shift + n - 1) // n * n + shift for n, shift in boundaries]
        )
        if first < profile_step <= last:
            last = profile_step - 1  # the profiled step starts the next call
        elif first == profile_step:
            last = first
        yield first, last
        first = last + 1


def train_calls(
    steps: Callable[[Iterator, int, int], dict[str, Tensor]],
    iterator: Iterator,
    start: int,
    end: int,
    config: RunConfig,
    every: Iterable[int],
    offset: int = 0,
    stop: StopSignals | None = None,
) -> Iterator[tuple[int, dict[str, Tensor]]]:
    """Runs `steps` (from `compiled_steps`) from `start` to `end` in the calls `call_ranges`
    gives; yields (last step of the call, its statistics). The call holding
    `config.profile_step` is traced for TensorBoard's profiler into `config.logdir`.

    Raises `Diverged` at the first multiple of `every` (or the end) after a step whose loss was
    not finite, before yielding it; and `Stopped` once the loop has handled the call that a
    signal of `stop` arrived in (the caller checkpoints its step and re-raises)."""
    every = tuple(every)
    ranges = call_ranges(start, end, config.steps_per_call, every, config.profile_step, offset)
    for first, last in ranges:
        if stop is not None and (signum := stop.requested()) is not None:
            raise Stopped(signum, first - 1, config.logdir)
        count = last - first + 1
        if first != config.profile_step:
            stats = steps(iterator, count, first)
        else:
            tf.profiler.experimental.start(config.logdir)
            try:
                stats = steps(iterator, count, first)
                stats["total"].numpy()  # wait for the whole step (a GPU runs asynchronously)
            finally:
                tf.profiler.experimental.stop()
        if last == end or any(n > 0 and last % n == 0 for n in every):
            bad = int(steps.first_nonfinite.numpy())
            if bad >= 0:
                raise Diverged(bad, "loss", config.logdir)
        fault_point("after_call", last)
        yield last, stats


def check_finite(variables: Sequence[tf.Variable], step: int, logdir: str) -> None:
    """Raises `Diverged` if a weight is NaN or infinite (checked before an evaluation)."""
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in variables])
    if not bool(finite):
        raise Diverged(step, "weights", logdir)


def compiled_predict(model: keras.Model, image_shape: Sequence[int]) -> Callable[[Tensor], Tensor]:
    """argmax of `model(x, training=False)`, one trace for every batch size (x float32)."""
    spec = tf.TensorSpec([None, *image_shape], tf.float32)
    return tf.function(
        lambda x: tf.argmax(model(x, training=False), axis=-1), input_signature=[spec]
    )


def error_rate(
    predict: Callable[[Tensor], Tensor],
    images: np.ndarray,
    labels: np.ndarray,
    to_input: Callable[[np.ndarray], Tensor] = tf.convert_to_tensor,
) -> float | None:
    """Error in percent of `predict` (a compiled function returning classes) over `images` in
    batches of EVAL_BATCH; None for an empty set (JSON's null). `to_input` maps a batch to the
    model's input."""
    if len(labels) == 0:
        return None
    chunks = range(0, len(labels), EVAL_BATCH)
    predictions = [predict(to_input(images[i : i + EVAL_BATCH])).numpy() for i in chunks]
    return 100.0 * float(np.mean(np.concatenate(predictions) != labels))


SPLIT_FILE = "split.json"


def write_split(logdir: str, split: Split) -> None:
    """`<logdir>/split.json`: the rule and every labeled and validation position of the run, in
    the train set as `ns3l.training.datasets.load_dataset` returns it (docs/runs.md)."""
    write_json_atomically(f"{logdir}/{SPLIT_FILE}", split.as_json())


def recorded_config(config: RunConfig) -> dict:
    """What config.json records of a run: its configuration and the precision policy derived from
    `--mixed_precision` and the devices (a resumption must run under the same one)."""
    return config.as_json() | {"precision": precision.policy_name(config.mixed_precision)}


def run_record(
    stack: str,
    config: RunConfig,
    split_sizes: dict[str, int],
    step: int,
    finished: bool,
    metrics: dict[str, float],
    history: list[dict],
) -> dict:
    """The results.json content every run writes (docs/runs.md): what ran, with the source of
    each value, how far it got, the stack's headline metrics, the evaluation history and the
    precision policy in effect."""
    return {
        "stack": stack,
        "config": config.as_json(),
        "sources": {name: s.source for name, s in config.settings.items()},
        "seed": config.seed,
        "dataset": config.dataset,
        "method": config.method,
        "split_sizes": split_sizes,
        "step": step,
        "finished": finished,
        "metrics": metrics,
        "history": history,
        "precision": precision.policy_name(config.mixed_precision),
        "provenance": provenance(),
    }


class Recorder:
    """Where a run's state goes: its checkpoints (with the evaluation history) first, then
    results.json, made by `record(step, history)`. A kill between the two loses nothing, since
    a restart rebuilds results.json from the checkpoint (`restore`)."""

    def __init__(
        self, checkpoint: RunCheckpoint, logdir: str, record: Callable[[int, list], dict]
    ) -> None:
        self.checkpoint, self.logdir, self.record = checkpoint, logdir, record
        self.saved = 0  # the step of the newest checkpoint this run wrote or restored

    def restore(self) -> tuple[int, list[dict]]:
        """(step, history) of the newest checkpoint that restores, (0, []) on a first start;
        results.json is rewritten from it (also if it was deleted or damaged)."""
        self.saved = self.checkpoint.restore_latest() or 0
        history = self.checkpoint.history
        if self.saved:
            write_results(self.logdir, self.record(self.saved, history))
        return self.saved, history

    def save(self, step: int, history: list[dict]) -> None:
        """Checkpoint at `step` (holding `history`), then results.json."""
        self.checkpoint.save(step, history)
        self.saved = step
        fault_point("after_checkpoint", step)
        write_results(self.logdir, self.record(step, history))
        fault_point("after_results", step)

    @contextlib.contextmanager
    def stops_and_divergence(self, history: list[dict]) -> Iterator[None]:
        """Around the training loop: a `Stopped` run checkpoints the step it stopped at; a
        `Diverged` one marks results.json and keeps its last finite checkpoint. Both re-raise."""
        try:
            yield
        except Stopped as stopped:
            if stopped.step > self.saved:
                self.save(stopped.step, history)
            raise
        except Diverged as diverged:
            mark = {"diverged": {"step": diverged.step, "what": diverged.what}}
            write_results(self.logdir, self.record(self.saved, history) | mark)
            raise


def final_record(logdir: str, metric: str, write: Callable[[str], object]) -> dict:
    """The run's results.json at the end of this process ({} if none), and, for a finished run,
    one line with its headline metric and where the file is."""
    if not (Path(logdir) / RESULTS_FILE).exists():
        return {}
    record = read_results(logdir)
    if record.get("finished"):
        write(f"finished: {headline(record, metric, logdir)}")
    return record


def resumed_line(start: int, total: int, logdir: str) -> str:
    """`resumed at step 1201 of 200000 from runs/x/checkpoints`."""
    return f"resumed at step {start + 1} of {total} from {logdir}/checkpoints"


def already_finished(logdir: str, metric: str) -> dict:
    """A finished run's results.json after a rerun of its command, and one line saying so."""
    record = read_results(logdir)
    print(f"already finished: {headline(record, metric, logdir)}", flush=True)
    return record


def headline(record: dict, metric: str, logdir: str) -> str:
    """`test_error_at_best_valid 12.34, runs/x/results.json` (– for a metric not computed)."""
    value = record["metrics"].get(metric)
    shown = "–" if value is None else f"{value:.2f}"
    return f"{metric} {shown}, {logdir}/{RESULTS_FILE}"
