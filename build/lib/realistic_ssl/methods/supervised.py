"""The supervised cross-entropy that every method adds (spec realistic_ssl.md §3.1, §4.1)."""

import tensorflow as tf

from ns3l.types import Tensor


def cross_entropy(labels: Tensor, logits: Tensor) -> Tensor:
    """-log softmax(z)_y per example, float32 shape [B]; the step masks it to L and divides by B.

    A label of -1 (an unlabeled row) gives exactly 0: its one-hot row is all zeros, as in [TF].
    A sparse cross-entropy would raise on CPU and return NaN on GPU for that row, and the
    trainer's mask multiplies, so a NaN would survive it."""
    logits = tf.cast(logits, tf.float32)
    targets = tf.one_hot(tf.cast(labels, tf.int32), depth=tf.shape(logits)[-1])
    return tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
