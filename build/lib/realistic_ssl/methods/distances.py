"""Per-example distances between logit rows, as [TF] `lib/ssl_utils.py` has them (spec §4).

Every function takes logits [B, K] (any float dtype) and returns float32 [B]: under a
mixed-precision policy the softmax, logs and sums still run in float32."""

import tensorflow as tf

from ns3l.types import Tensor


def mean_squared_softmax_error(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """mean_k (softmax(s)_k - softmax(t)_k)², shape [B] (Π-model and Mean Teacher, §4.2-4.3).

    A mean over the K classes, not a sum, like [TF]: the penalty shrinks by 10× from CIFAR-10 to
    CIFAR-100 at the same weight (spec §9.7)."""
    student = tf.nn.softmax(tf.cast(student_logits, tf.float32))
    teacher = tf.nn.softmax(tf.cast(teacher_logits, tf.float32))
    return tf.reduce_mean(tf.square(student - teacher), axis=-1)


def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(softmax(p) ‖ softmax(q)) = Σ_k p_k (log p_k - log q_k) in nats, shape [B].

    [TF]'s `forward_kl(s, t)` is `kl_divergence(s, t)` and its `reverse_kl(s, t)` is
    `kl_divergence(t, s)`. Both logs come from log_softmax, so a class with p_k ≈ 0 costs
    nothing instead of 0 · log 0 = NaN."""
    log_p = tf.nn.log_softmax(tf.cast(p_logits, tf.float32))
    log_q = tf.nn.log_softmax(tf.cast(q_logits, tf.float32))
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def entropy(logits: Tensor) -> Tensor:
    """H(softmax(z)) = -Σ_k p_k log p_k in nats, shape [B] (EntMin, §4.5)."""
    log_p = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    return -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
