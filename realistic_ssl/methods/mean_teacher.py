"""Mean Teacher (Tarvainen & Valpola 2017, arXiv:1703.01780) as run by Oliver et al. 2018.

Spec: realistic_ssl.md §4.3. Follows [TF]: a constant EMA decay of 0.95 without bias
correction. [PT] uses min(1 - 1/(t + 1), 0.95), which only differs in the first 20 steps (§8).

The trainer builds `teacher` as a second instance of the network, copies the student's weights
into it once (the EMA starts at the initial weights), and calls `update_teacher` after every
optimizer step."""

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


def update_teacher(
    teacher_variables: Sequence[keras.Variable],
    student_variables: Sequence[keras.Variable],
    decay: float = EMA_DECAY,
) -> None:
    """teacher ← decay · teacher + (1 - decay) · student, pairwise over trainable variables.

    Pass `teacher.trainable_variables` and `model.trainable_variables`: both networks are built
    the same way, so the two lists pair up in order (a length mismatch raises)."""
    for teacher_variable, student_variable in zip(
        teacher_variables, student_variables, strict=True
    ):
        teacher_variable.assign(decay * teacher_variable + (1.0 - decay) * student_variable)
