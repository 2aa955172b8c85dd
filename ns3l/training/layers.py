"""Keras layers both stacks' networks share."""

import keras
import tensorflow as tf

from ns3l.types import Tensor


class BatchNorm(keras.layers.Layer):
    """Batch norm over the last axis whose moving-average update is a call argument (spec §7).

    Training mode normalises with the batch moments over all other axes, and updates the moving
    averages (m ← m - (1 - momentum)·(m - batch)) only if `update_bn_stats`; inference uses the
    moving averages. [TF]: momentum 0.999, epsilon 1e-3; [PT] parity: 0.9, 1e-5 (spec §2).

    Like every original (TF1's fused kernel, PyTorch's BatchNorm2d), the batch normalises with
    its biased variance but feeds the unbiased one, × n/(n - 1) for n values per channel, into
    the moving variance: 3.2 % more at 32 values per channel, 0.016 % at 100 images of 8x8."""

    def __init__(
        self,
        momentum: float = 0.999,
        epsilon: float = 1e-3,
        synchronized: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = synchronized  # all-reduce the batch moments across replicas

    def build(self, input_shape: tuple) -> None:
        channels = (input_shape[-1],)
        # autocast=False keeps the float32 values under a mixed policy; aggregation="mean" lets
        # each replica assign the moving statistics (their new values are averaged).
        trainable = {"shape": channels, "autocast": False}
        self.gamma = self.add_weight(name="gamma", initializer="ones", **trainable)
        self.beta = self.add_weight(name="beta", initializer="zeros", **trainable)
        moving = {**trainable, "trainable": False, "aggregation": "mean"}
        self.moving_mean = self.add_weight(name="moving_mean", initializer="zeros", **moving)
        self.moving_variance = self.add_weight(name="moving_variance", initializer="ones", **moving)

    def call(self, x: Tensor, training: bool = False, update_bn_stats: bool = True) -> Tensor:
        x32 = tf.cast(x, tf.float32)  # moments in float32 also under mixed precision
        if training:
            mean, variance, count = self.batch_moments(x32)
            if update_bn_stats:
                decay = 1.0 - self.momentum
                unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
                self.moving_mean.assign_sub(decay * (self.moving_mean - mean))
                self.moving_variance.assign_sub(decay * (self.moving_variance - unbiased))
        else:
            mean, variance = self.moving_mean.value, self.moving_variance.value
        normalized = tf.nn.batch_normalization(
            x32, mean, variance, self.beta.value, self.gamma.value, self.epsilon
        )
        return tf.cast(normalized, self.compute_dtype)

    def batch_moments(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean and biased variance per channel, and the number n of values each is taken over
        (float32), over this replica or, if `synchronized`, over all replicas' batches."""
        axes = list(range(len(x.shape) - 1))
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        context = tf.distribute.get_replica_context()
        if not self.synchronized or context is None or context.num_replicas_in_sync == 1:
            return (*tf.nn.moments(x, axes), count)
        sums = [tf.reduce_sum(x, axes), tf.reduce_sum(tf.square(x), axes), count]
        total, total_squares, total_count = context.all_reduce("sum", sums)
        mean = total / total_count
        variance = tf.maximum(total_squares / total_count - tf.square(mean), 0.0)
        return mean, variance, total_count
