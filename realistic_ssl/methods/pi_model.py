"""Π-model (Laine & Aila 2017, arXiv:1610.02242) as run by Oliver et al. 2018.

Spec: realistic_ssl.md §4.2. Follows [TF]: the gradient goes through the first (BN-updating)
pass and the second pass is the target. [PT] swaps the roles: same value, gradient through the
second pass (spec §8)."""

import keras
import tensorflow as tf

from ns3l.types import Tensor
from realistic_ssl.methods.distances import mean_squared_softmax_error


def consistency(model: keras.Model, x: Tensor, logits: Tensor) -> Tensor:
    """Per-example penalty, shape [B]; the step masks it to U and divides by B.

    x [B, H, W, C] is the pre-augmentation batch and logits [B, K] its first pass."""
    # Second view: fresh augmentation and noise, BN moving statistics left untouched.
    teacher = tf.stop_gradient(model(x, training=True, update_bn_stats=False))
    return mean_squared_softmax_error(logits, teacher)
