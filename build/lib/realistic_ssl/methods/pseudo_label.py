"""Pseudo-Label (Lee 2013) as run by Oliver et al. 2018.

Spec: realistic_ssl.md §4.6, §8. Two variants:
- `consistency`, [TF]: one pass; a row whose top probability exceeds the threshold is pulled
  towards softmax(10 · onehot(argmax)), i.e. 0.99959 on the argmax and 4.54e-5 elsewhere for
  K = 10, by KL(target ‖ p) ([TF]'s `reverse_kl`); other rows contribute nothing.
- `second_view_consistency`, [PT]: a second pass carries the gradient; confident rows get a
  cross-entropy to 10 · onehot (not softmaxed: 10 × hard CE), the others a soft cross-entropy to
  the first pass's probabilities (an extra consistency term). [PT] hard-codes the one-hot to 10
  classes; here it has the logits' K."""

import keras
import tensorflow as tf

from ns3l.types import Tensor
from realistic_ssl.methods.distances import kl_divergence

THRESHOLD = 0.95  # [TF] lib/hparams.py, spec §4.7
TARGET_LOGIT = 10.0  # [TF]: the pseudo-label is a logit vector, not a probability


def consistency(logits: Tensor, threshold: float = THRESHOLD) -> Tensor:
    """Per-example penalty, shape [B]; the step masks it to U and divides by B.

    Confident means max_k p_k > threshold (strict)."""
    logits = tf.cast(logits, tf.float32)  # [B, K]
    confident = tf.reduce_max(tf.nn.softmax(logits), axis=-1) > threshold  # [B]
    # Built from argmax, so the target is a constant, as [TF]'s stop_gradient makes it.
    targets = TARGET_LOGIT * tf.one_hot(tf.argmax(logits, axis=-1), depth=tf.shape(logits)[-1])
    penalty = kl_divergence(targets, logits)
    # [TF] uses the row's own logits as the target of a non-confident row: KL(p ‖ p) = 0 with a
    # gradient that is 0 up to rounding. Selecting 0 gives the same value and an exact 0 gradient.
    return tf.where(confident, penalty, 0.0)


def second_view_consistency(
    model: keras.Model, x: Tensor, logits: Tensor, threshold: float = THRESHOLD
) -> Tensor:
    """[PT]'s per-example penalty, shape [B]: -Σ_k target_k log softmax(second view)_k.

    x [B, H, W, C] is the pre-augmentation batch and logits [B, K] its first pass; the second
    pass has fresh augmentation, batch statistics and no BN update. Confident means some class
    has probability > threshold (strict)."""
    probs = tf.stop_gradient(tf.nn.softmax(tf.cast(logits, tf.float32)))  # [B, K]
    confident = tf.reduce_max(probs, axis=-1) > threshold  # [B]
    hard = TARGET_LOGIT * tf.one_hot(tf.argmax(probs, axis=-1), depth=tf.shape(probs)[-1])
    targets = tf.where(confident[:, None], hard, probs)
    second = tf.cast(model(x, training=True, update_bn_stats=False), tf.float32)
    return -tf.reduce_sum(targets * tf.nn.log_softmax(second), axis=-1)
