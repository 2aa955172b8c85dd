"""Π-model (Laine & Aila 2017, arXiv:1610.02242) as run by Oliver et al. 2018.

Spec: realistic_ssl.md §4.2. `gradient_through` picks the variant (spec §8): "first" is [TF], the
gradient goes through the first (BN-updating) pass and the second pass is the target; "second" is
[PT], which swaps the roles: same value, gradient through the second pass."""

import keras
import tensorflow as tf

from ns3l.types import Tensor
from realistic_ssl.methods.distances import mean_squared_softmax_error


def consistency(
    model: keras.Model, x: Tensor, logits: Tensor, gradient_through: str = "first"
) -> Tensor:
    """Per-example penalty, shape [B]; the step masks it to U and divides by B.

    x [B, H, W, C] is the pre-augmentation batch and logits [B, K] its first pass."""
    # Second view: fresh augmentation and noise, BN moving statistics left untouched.
    second = model(x, training=True, update_bn_stats=False)
    if gradient_through == "first":
        return mean_squared_softmax_error(logits, tf.stop_gradient(second))
    return mean_squared_softmax_error(second, tf.stop_gradient(logits))
