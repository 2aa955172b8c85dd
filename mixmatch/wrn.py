"""The MixMatch "ResNet" (libml/models.py of the original): a pre-activation WRN-28-2 variant.

Spec: mixmatch.md §2 (layout, initializers, batch norm), §9 items 5-7.

Contract: `model(x, training=False, update_bn_stats=True) -> logits [B, K] float32`, where x
[B, H, W, C] is already augmented and in [-1, 1]: MixMatch augments in the input pipeline, so
nothing random happens inside the model. `training=True` normalises with batch statistics and,
only if `update_bn_stats`, moves the BN averages (pass 0 of §2.3; the label guess and passes 1, 2
leave them). Build the model (`model.build(x_shape)` or one call) before `tf.function`,
`strategy.run` or a checkpoint restore."""

import math

import keras
import tensorflow as tf

from ns3l.training import seeds
from ns3l.training.layers import BatchNorm
from ns3l.types import Tensor

LEAKY_SLOPE = 0.1  # spec §2.2: Keras' default of 0.3 would be wrong


def default_scales(width: int) -> int:
    """ceil(log2(width)) − 2 (spec §2.1): 3 at 32 px. STL-10 passes 4, not this rule's 5 (§5)."""
    return math.ceil(math.log2(width)) - 2


def _conv(
    filters: int, kernel: int, stride: int, seed: keras.random.SeedGenerator
) -> keras.layers.Conv2D:
    """A "same"-padded conv with a zero-initialised bias and untruncated He fan-out normal
    kernel, std sqrt(2 / (k·k·f_out)) (spec §2.2)."""
    initializer = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed)
    return keras.layers.Conv2D(
        filters, kernel, stride, padding="same", kernel_initializer=initializer
    )


class ResidualBlock(keras.layers.Layer):
    """out = shortcut + conv(lrelu(BN₂(conv(lrelu(BN₁(x)), stride)))) (spec §2.1).

    The shortcut reads lrelu(BN₁(x)) if `activate_before_residual` (scale 0, block 0 only), else
    the raw x, through a strided 1x1 conv when the channel count changes."""

    def __init__(
        self,
        filters_in: int,
        filters: int,
        stride: int,
        activate_before_residual: bool,
        seed: keras.random.SeedGenerator,
        bn_options: dict,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.activate_before_residual = activate_before_residual
        self.bn_in, self.bn_mid = BatchNorm(**bn_options), BatchNorm(**bn_options)
        self.conv_in = _conv(filters, 3, stride, seed)
        self.conv_out = _conv(filters, 3, 1, seed)
        self.projection = _conv(filters, 1, stride, seed) if filters_in != filters else None

    def build(self, input_shape: tuple) -> None:
        self.bn_in.build(input_shape)
        self.conv_in.build(input_shape)
        middle_shape = self.conv_in.compute_output_shape(input_shape)
        self.bn_mid.build(middle_shape)
        self.conv_out.build(middle_shape)
        if self.projection is not None:
            self.projection.build(input_shape)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self.conv_in.compute_output_shape(input_shape)

    def call(self, x: Tensor, training: bool = False, update_bn_stats: bool = True) -> Tensor:
        bn = {"training": training, "update_bn_stats": update_bn_stats}
        activated = tf.nn.leaky_relu(self.bn_in(x, **bn), LEAKY_SLOPE)
        source = activated if self.activate_before_residual else x
        h = self.conv_in(activated)
        h = self.conv_out(tf.nn.leaky_relu(self.bn_mid(h, **bn), LEAKY_SLOPE))
        return h + (self.projection(source) if self.projection is not None else source)


class ResNet(keras.Model):
    """Stem conv 3x3 16 → `scales` scales of `repeat` blocks, width filters·2^s → BN, leaky ReLU
    0.1, mean over H and W → dense (spec §2.1).

    x [B, H, W, C] -> logits [B, num_classes] float32, also under a mixed policy. 1,469,642
    trainable parameters at 10 classes and the defaults; 5,933,770 at scales=4 (STL-10). The
    initial weights are the run `seed`'s stream "init" (`ns3l.training.seeds`)."""

    def __init__(
        self,
        num_classes: int,
        *,
        seed: int,
        filters: int = 32,
        repeat: int = 4,
        scales: int = 3,
        bn_momentum: float = 0.999,
        bn_epsilon: float = 1e-3,
        synchronized_bn: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        init_seed = seeds.seed_generator(seed, "init")  # a fresh draw per layer, reproducible
        # synchronized_bn: batch moments over all replicas' rows (ns3l.training.layers.BatchNorm).
        bn_options = {
            "momentum": bn_momentum,
            "epsilon": bn_epsilon,
            "synchronized": synchronized_bn,
        }
        self.stem = _conv(16, 3, 1, init_seed)
        names, filters_in = [], 16
        for scale in range(scales):
            width = filters * 2**scale
            for index in range(repeat):
                block = ResidualBlock(
                    filters_in,
                    width,
                    stride=2 if scale > 0 and index == 0 else 1,
                    activate_before_residual=scale == index == 0,
                    seed=init_seed,
                    bn_options=bn_options,
                )
                # One attribute per block: tf.train.Checkpoint does not see into a Keras 3 list
                # of layers, and assert_consumed would not notice the missing variables.
                names.append(f"block_{scale}_{index}")
                setattr(self, names[-1], block)
                filters_in = width
        self.block_names = tuple(names)
        self.final_bn = BatchNorm(**bn_options)
        glorot = keras.initializers.GlorotNormal(init_seed)
        # float32 even under a mixed policy: the losses want float32 logits.
        self.classifier = keras.layers.Dense(
            num_classes, kernel_initializer=glorot, dtype="float32"
        )

    @property
    def blocks(self) -> list[ResidualBlock]:
        """The residual blocks in call order."""
        return [getattr(self, name) for name in self.block_names]

    def build(self, input_shape: tuple) -> None:
        """Creates every variable from the input shape, without a forward pass."""
        self.stem.build(input_shape)
        shape = self.stem.compute_output_shape(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.final_bn.build(shape)
        self.classifier.build((shape[0], shape[-1]))

    def call(self, x: Tensor, training: bool = False, update_bn_stats: bool = True) -> Tensor:
        bn = {"training": training, "update_bn_stats": update_bn_stats}
        h = self.stem(x)
        for block in self.blocks:
            h = block(h, **bn)
        h = tf.nn.leaky_relu(self.final_bn(h, **bn), LEAKY_SLOPE)
        return self.classifier(tf.reduce_mean(h, axis=[1, 2]))
