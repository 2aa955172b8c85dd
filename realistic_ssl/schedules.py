"""The consistency ramp-up and the learning-rate decay of Oliver et al. 2018 (spec §3.3-3.4)."""

import keras
import tensorflow as tf

from ns3l.types import Tensor

LR_DECAY_RATE = 0.2  # [TF] lib/hparams.py; assumed unchanged by NS3L (spec §4.7)


def sigmoid_rampup(step: Tensor, length: int) -> Tensor:
    """exp(-5 (1 - t/length)²) for t < length, then 1, float32 (realistic_ssl.md §3.4).

    t is [TF]'s 0-based step before the update, so the first step already has exp(-5) ≈ 0.0067,
    not 0. [PT] uses the 1-based iteration. Accepts a number, a numpy array or a tensor (e.g.
    `optimizer.iterations`); `length` must be positive."""
    progress = tf.minimum(tf.cast(step, tf.float32) / tf.cast(length, tf.float32), 1.0)
    return tf.exp(-5.0 * tf.square(1.0 - progress))


def step_decay(
    lr: float, decay_steps: int, decay_rate: float = LR_DECAY_RATE
) -> keras.optimizers.schedules.LearningRateSchedule:
    """lr · decay_rate^floor(t / decay_steps), no warm-up (realistic_ssl.md §3.3).

    decay_steps is 130,000 in the NS3L runs (one ×0.2 drop in 200,000 steps) and 400,000 in
    Oliver's. Keras' ExponentialDecay with staircase=True is exactly this formula, and its
    get_config makes the schedule serialisable with the optimizer."""
    return keras.optimizers.schedules.ExponentialDecay(lr, decay_steps, decay_rate, staircase=True)
