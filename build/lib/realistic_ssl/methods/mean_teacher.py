"""Mean Teacher (Tarvainen & Valpola 2017, arXiv:1703.01780) as run by Oliver et al. 2018.

Spec: realistic_ssl.md §4.3, §3.2. Two variants (spec §8), chosen by the trainer's settings:
- [TF]: a constant decay of 0.95 without bias correction, and the EMA op runs among the update
  ops the train op depends on, so it averages the weights *before* the step's update;
- [PT]: decay min(1 - 1/(t + 1), 0.95) at the t-th update (different in the first 20 steps
  only), applied after `optimizer.step()`, to the weights after the update.

The trainer builds `teacher` as a second instance of the network, copies the student's weights
into it once (the EMA starts at the initial weights), and calls `update_teacher` once per step,
before or after the optimizer update."""

from collections.abc import Sequence

import keras
import tensorflow as tf

from ns3l.types import Tensor
from realistic_ssl.methods.distances import mean_squared_softmax_error

EMA_DECAY = 0.95  # [TF] lib/hparams.py, spec §4.7


def consistency(teacher: keras.Model, x: Tensor, logits: Tensor) -> Tensor:
    """MSE of softmaxes between the student's first pass and the EMA teacher, shape [B].

    The teacher runs in training mode (batch statistics, fresh augmentation), so its BN moving
    averages are never used and need no EMA; it does not update them either."""
    teacher_logits = tf.stop_gradient(teacher(x, training=True, update_bn_stats=False))
    return mean_squared_softmax_error(logits, teacher_logits)


def ema_decay(update: Tensor, decay: float = EMA_DECAY, schedule: str = "constant") -> Tensor:
    """The decay of the `update`-th EMA update (1 for the first): `decay`, or for "warmup"
    min(1 - 1/(update + 1), decay) ([PT]: 0.5, 0.667, ... up to 0.95 from the 19th), float32."""
    if schedule == "constant":
        return tf.constant(decay, tf.float32)
    t = tf.cast(update, tf.float32)
    return tf.minimum(1.0 - 1.0 / (t + 1.0), decay)


def update_teacher(
    teacher_variables: Sequence[keras.Variable],
    student_variables: Sequence[keras.Variable],
    decay: float | Tensor = EMA_DECAY,
) -> None:
    """teacher ← decay · teacher + (1 - decay) · student, pairwise over trainable variables.

    Pass `teacher.trainable_variables` and `model.trainable_variables`: both networks are built
    the same way, so the two lists pair up in order (a length mismatch raises)."""
    for teacher_variable, student_variable in zip(
        teacher_variables, student_variables, strict=True
    ):
        teacher_variable.assign(decay * teacher_variable + (1.0 - decay) * student_variable)
