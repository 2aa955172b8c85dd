"""The parts of a training run both stacks' loops share: the distributed step, evaluation in
large batches, the evaluation history of a resumed run, and the results.json record."""

import math
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from ns3l.distribute import make_strategy
from ns3l.results import RESULTS_FILE, read_results
from ns3l.settings import RunConfig
from ns3l.types import Tensor

EVAL_BATCH = 1000  # large inference batches: evaluation is a small share of a run


def start_run(config: RunConfig) -> tf.distribute.Strategy:
    """What every run does first: seed Keras (initial weights), switch on op determinism if asked,
    and return the strategy `--strategy` names."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    return make_strategy(config.strategy)


def compiled_step(
    strategy: tf.distribute.Strategy, train_step: Callable[..., dict[str, Tensor]]
) -> Callable:
    """One tf.function per run: `train_step` on every replica, its statistics summed over the
    replicas (each replica returns its share of the global value)."""

    @tf.function
    def step(batch: tuple[Tensor, ...]) -> dict[str, Tensor]:
        per_replica = strategy.run(train_step, args=batch)
        return {
            name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for name, value in per_replica.items()
        }

    return step


def error_rate(
    predict: Callable[[Tensor], Tensor],
    images: np.ndarray,
    labels: np.ndarray,
    to_input: Callable[[np.ndarray], Tensor] = tf.convert_to_tensor,
) -> float:
    """Error in percent of `predict` (a compiled function returning classes) over `images` in
    batches of EVAL_BATCH; NaN for an empty set. `to_input` maps a batch to the model's input."""
    if len(labels) == 0:
        return math.nan
    chunks = range(0, len(labels), EVAL_BATCH)
    predictions = [predict(to_input(images[i : i + EVAL_BATCH])).numpy() for i in chunks]
    return 100.0 * float(np.mean(np.concatenate(predictions) != labels))


def previous_history(logdir: str, restored_step: int) -> list[dict]:
    """The evaluations a resumed run already made, up to the step of its checkpoint."""
    if not restored_step or not (tf.io.gfile.exists(f"{logdir}/{RESULTS_FILE}")):
        return []
    return [h for h in read_results(logdir)["history"] if h["step"] <= restored_step]


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
    each value, how far it got, the stack's headline metrics and the evaluation history."""
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
    }
