"""`--strategy`: one device or all local ones, and the loss reduction a custom step needs for both.

How a custom train step uses them (create variables in `strategy.scope()`, divide by the global
batch): docs/runs.md."""

import functools
from collections.abc import Sequence

import tensorflow as tf

from ns3l.errors import UsageError, expected
from ns3l.types import Tensor

STRATEGIES = ("default", "mirrored")


def make_strategy(name: str, devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The strategy `--strategy=name` asks for.

    `default`: TensorFlow's default strategy, i.e. no distribution. `mirrored`: synchronous data
    parallelism over `devices`, by default every local GPU, or every logical CPU device when there
    is no GPU (so tests can run it)."""
    if name not in STRATEGIES:
        raise expected("--strategy", name, STRATEGIES)
    if name == "default":
        if devices:
            raise UsageError(f"devices {', '.join(devices)} need --strategy=mirrored")
        return tf.distribute.get_strategy()
    if not devices:
        local = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        devices = [device.name for device in local]
    return _mirrored(tuple(devices))


@functools.cache
def _mirrored(devices: tuple[str, ...]) -> tf.distribute.MirroredStrategy:
    # One strategy per device set and process: the collective ops of two MirroredStrategy objects
    # over the same devices share instance keys and can collide ("Shape mismatch in the
    # collective instance"), e.g. when one process trains several runs in turn.
    return tf.distribute.MirroredStrategy(devices=list(devices))


def global_batch_mean(
    per_example: Tensor, global_batch_size: int, weights: Tensor | None = None
) -> Tensor:
    """Σ_i weights_i · per_example_i / global_batch_size over this replica's rows, a scalar.

    The optimizer sums gradients over replicas, so dividing each replica's sum by the global
    batch makes the update that of the mean over the whole batch. A replica-local mean would
    scale the gradient by the replica count. With `weights` a 0/1 mask this is the masked sum
    over the whole batch, not the mean over the masked rows. Without a strategy it is the batch
    mean."""
    return tf.nn.compute_average_loss(
        per_example, sample_weight=weights, global_batch_size=global_batch_size
    )
