"""`--mixed_precision`: which Keras policy a run builds its networks under, and loss scaling.

float16 on a GPU (tensor cores; needs loss scaling), bfloat16 on a CPU (oneDNN's low-precision
type; float32's exponent range, so no loss scaling). Only the layers compute in low precision:
variables, batch-norm moments, the classifier's logits, every loss (softmax, KL, NS3L), the VAT
perturbation and the optimizer stay float32 (docs/performance.md#mixed-precision)."""

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

from ns3l.types import Tensor

FLOAT32 = "float32"
MIXED_FLOAT16 = "mixed_float16"
MIXED_BFLOAT16 = "mixed_bfloat16"


def policy_name(mixed_precision: bool) -> str:
    """The policy a run uses: float32, or the mixed policy this machine's devices run fastest."""
    if not mixed_precision:
        return FLOAT32
    return MIXED_FLOAT16 if tf.config.list_physical_devices("GPU") else MIXED_BFLOAT16


@contextlib.contextmanager
def policy_scope(name: str) -> Iterator[None]:
    """Keras' global policy is `name` inside (layers read it when created), restored after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def with_loss_scaling(optimizer: keras.Optimizer) -> keras.Optimizer:
    """`optimizer` wrapped in Keras' dynamic loss scaling if the global policy is float16.

    Call it where the optimizer is created, inside `policy_scope`. A step whose scaled gradients
    overflow is skipped (no weight change, `iterations` not counted) and the scale halves; Keras
    starts the scale at 2^15 and doubles it after 2,000 finite steps."""
    if keras.mixed_precision.global_policy().name != MIXED_FLOAT16:
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def scaled(optimizer: keras.Optimizer, loss: Tensor) -> Tensor:
    """The loss to differentiate, computed inside the gradient tape: multiplied by the loss
    scale if `optimizer` has one (its `apply` divides the gradients by the same scale), else
    unchanged."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss
