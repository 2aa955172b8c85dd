"""The consistency ramp-up and the learning-rate decay of Oliver et al. 2018 (spec §3.3-3.4).

[TF] and [PT] count differently (spec §3.3-3.4, §8): [TF] ramps at the 0-based step before the
update and decays in a staircase; [PT] ramps at the 1-based iteration and multiplies the lr by the
rate once, after iteration `lr_decay_steps`. The two lr schedules agree until 2·lr_decay_steps."""

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


def rampup(step: Tensor, length: int, counting: str = "zero_based") -> Tensor:
    """`sigmoid_rampup` at the 0-based `step` ([TF], "zero_based") or at the 1-based iteration
    step + 1 ([PT], "one_based")."""
    return sigmoid_rampup(step + 1 if counting == "one_based" else step, length)


def learning_rate(
    lr: float, decay_steps: int, decay_rate: float = LR_DECAY_RATE, decay: str = "staircase"
) -> keras.optimizers.schedules.LearningRateSchedule:
    """`step_decay` ([TF], "staircase"), or `single_decay` ([PT], "once")."""
    if decay == "once":
        return single_decay(lr, decay_steps, decay_rate)
    return step_decay(lr, decay_steps, decay_rate)


def single_decay(
    lr: float, decay_steps: int, decay_rate: float = LR_DECAY_RATE
) -> keras.optimizers.schedules.LearningRateSchedule:
    """lr for the 0-based steps t < decay_steps, lr · decay_rate from then on ([PT] train.py:
    `lr *= factor` once, after the 1-based iteration `decay_steps`)."""
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [decay_steps - 1], [lr, lr * decay_rate]
    )


def step_decay(
    lr: float, decay_steps: int, decay_rate: float = LR_DECAY_RATE
) -> keras.optimizers.schedules.LearningRateSchedule:
    """lr · decay_rate^floor(t / decay_steps), no warm-up (realistic_ssl.md §3.3).

    decay_steps is 130,000 in the NS3L runs (one ×0.2 drop in 200,000 steps) and 400,000 in
    Oliver's. Keras' ExponentialDecay with staircase=True is exactly this formula, and its
    get_config makes the schedule serialisable with the optimizer."""
    return keras.optimizers.schedules.ExponentialDecay(lr, decay_steps, decay_rate, staircase=True)
