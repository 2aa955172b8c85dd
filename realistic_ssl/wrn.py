"""WRN-28-2 of Oliver et al. 2018, with its augmentation inside the call and a batch norm whose
moving-statistics update is a call argument.

Spec: realistic_ssl.md §2 (model), §1.6 (augmentation), §7 (TF2 notes). Either original's variant
(spec §8) is a constructor argument: BN decay and epsilon ([TF] 0.999 / 1e-3, [PT] 0.9 / 1e-5),
the stride-2 padding ([TF] "SAME", [PT] one pixel each side), the classifier's Glorot normal
([TF] truncated, [PT] not) and, in the augmentation, per-example or per-batch draws.

Contract: `model(x, training=False, update_bn_stats=True) -> logits [B, K] float32`, where x
[B, H, W, C] float32 is the preprocessed, pre-augmentation batch. `training=True` augments with
fresh randomness on every call and normalises with batch statistics; `update_bn_stats=False`
leaves the moving averages untouched (the extra passes of Π, VAT and NS3L). `training=False`
neither augments nor uses batch statistics. Build the model (`model.build(x_shape)`, in
`strategy.scope()` when distributed) before `tf.function`, `strategy.run` or a checkpoint
restore. The augmentation RNG is the tracked attribute `model.generator`, so
`tf.train.Checkpoint(model=model)` saves and restores its state; a model created in
`strategy.scope()` draws a separate stream on each replica. Streams come from `ns3l.training.seeds`:
"init" for the weights, `augment_stream` ("augment"; the Mean Teacher's teacher has its own)
for the views."""

import keras
import tensorflow as tf

from ns3l.errors import UsageError, expected
from ns3l.training import seeds
from ns3l.training.augment import Augmentation, augment
from ns3l.training.layers import BatchNorm
from ns3l.types import Tensor

LEAKY_SLOPE = 0.1  # spec §2, both stacks


CIFAR_AUGMENTATION = Augmentation(flip=True, translate=2, noise_std=0.15)
AUGMENTATIONS = {  # spec §1.6 and §4.7 (hparams.py dataset overrides)
    "cifar10": CIFAR_AUGMENTATION,
    "cifar100": CIFAR_AUGMENTATION,  # CIFAR-10 treatment assumed (spec §9.3)
    "svhn": Augmentation(flip=False, translate=2, noise_std=0.0),
    # Our choice for the offline demo set: no flip since digits are not mirror-symmetric,
    # otherwise as CIFAR.
    "digits": Augmentation(flip=False, translate=2, noise_std=0.15),
    "none": Augmentation(flip=False, translate=0, noise_std=0.0),
}


def augmentation_for(dataset: str) -> Augmentation:
    """The preset of `AUGMENTATIONS`; any other (TFDS) name gets the CIFAR preset, the [TF] base
    values plus flip (spec §4.7), since natural images are mostly mirror-symmetric."""
    return AUGMENTATIONS.get(dataset, CIFAR_AUGMENTATION)


STRIDE2_PADDINGS = ("same", "symmetric")
DENSE_INITS = {  # spec §2: TF1's glorot_normal truncates, PyTorch's xavier_normal_ does not
    "glorot_truncated": "truncated_normal",
    "glorot_untruncated": "untruncated_normal",
}


def _conv(
    filters: int, kernel: int, stride: int, seed: keras.random.SeedGenerator, padding: str = "same"
) -> keras.layers.Conv2D:
    """A bias-free conv with He fan-out normal initialisation, untruncated (spec §2): TF "SAME"
    padding, or "valid" on an input the caller pads."""
    initializer = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed)
    return keras.layers.Conv2D(
        filters, kernel, stride, padding=padding, use_bias=False, kernel_initializer=initializer
    )


class ResidualUnit(keras.layers.Layer):
    """Pre-activation unit: h = conv(lrelu(BN(conv(lrelu(BN(x)), stride)))) + shortcut (spec §2).

    The shortcut source is the activated input if `activate_before_residual`, else the raw
    input, projected by a strided 1x1 conv when the channel count changes. With
    `stride2_padding="symmetric"` a strided 3x3 conv pads one pixel on every side ([PT]) instead
    of TF's "SAME" (none before, one after); the 1x1 projection needs no padding either way."""

    def __init__(
        self,
        filters_in: int,
        filters: int,
        stride: int,
        activate_before_residual: bool,
        seed: keras.random.SeedGenerator,
        bn_options: dict,
        leaky_slope: float = LEAKY_SLOPE,
        stride2_padding: str = "same",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.activate_before_residual = activate_before_residual
        self.leaky_slope = leaky_slope
        self.bn_in, self.bn_mid = BatchNorm(**bn_options), BatchNorm(**bn_options)
        self.pad_by_hand = stride == 2 and stride2_padding == "symmetric"
        self.conv_in = _conv(filters, 3, stride, seed, "valid" if self.pad_by_hand else "same")
        self.conv_out = _conv(filters, 3, 1, seed)
        self.projection = _conv(filters, 1, stride, seed) if filters_in != filters else None

    def build(self, input_shape: tuple) -> None:
        self.bn_in.build(input_shape)
        self.conv_in.build(self._padded(input_shape))
        middle_shape = self.compute_output_shape(input_shape)
        self.bn_mid.build(middle_shape)
        self.conv_out.build(middle_shape)
        if self.projection is not None:
            self.projection.build(input_shape)

    def _padded(self, shape: tuple) -> tuple:
        if not self.pad_by_hand:
            return shape
        return (shape[0], *(None if d is None else d + 2 for d in shape[1:3]), shape[3])

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self.conv_in.compute_output_shape(self._padded(input_shape))

    def call(self, x: Tensor, training: bool = False, update_bn_stats: bool = True) -> Tensor:
        bn = {"training": training, "update_bn_stats": update_bn_stats}
        activated = tf.nn.leaky_relu(self.bn_in(x, **bn), self.leaky_slope)
        source = activated if self.activate_before_residual else x
        if self.pad_by_hand:
            activated = tf.pad(activated, [[0, 0], [1, 1], [1, 1], [0, 0]])
        h = self.conv_in(activated)
        h = self.conv_out(tf.nn.leaky_relu(self.bn_mid(h, **bn), self.leaky_slope))
        return h + (self.projection(source) if self.projection is not None else source)


def _residual_units(
    units_per_stage: int, width: int, seed: keras.random.SeedGenerator, options: dict
) -> dict[str, ResidualUnit]:
    """Three stages of 16·width, 32·width, 64·width channels at strides 1, 2, 2 (spec §2), by
    their [TF] names unit_1_0 ... unit_3_{n-1}."""
    units, filters_in = {}, 16
    for stage, (filters, stride) in enumerate(zip((16, 32, 64), (1, 2, 2), strict=True)):
        for index in range(units_per_stage):
            units[f"unit_{stage + 1}_{index}"] = ResidualUnit(
                filters_in,
                filters * width,
                stride if index == 0 else 1,
                activate_before_residual=stage == index == 0,  # unit_1_0 only
                seed=seed,
                **options,
            )
            filters_in = filters * width
    return units


class WideResNet(keras.Model):
    """Pre-activation WRN-depth-width with leaky ReLU 0.1 (spec §2), augmenting inside the call.

    x [B, H, W, C] float32 -> logits [B, num_classes] float32 (also under a mixed policy). Any
    H, W and C. depth = 6n + 4 gives n units per stage: 28 for the paper, 10 for tests. The run's
    `seed` gives the initial weights (stream "init") and the augmentation (`augment_stream`)."""

    def __init__(
        self,
        num_classes: int,
        *,
        augmentation: Augmentation,
        seed: int,
        augment_stream: str = "augment",
        depth: int = 28,
        width: int = 2,
        bn_momentum: float = 0.999,
        bn_epsilon: float = 1e-3,
        synchronized_bn: bool = False,
        leaky_slope: float = LEAKY_SLOPE,
        stride2_padding: str = "same",
        dense_init: str = "glorot_truncated",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if depth < 10 or (depth - 4) % 6:
            raise UsageError(f"depth={depth}: expected 6·n + 4 with n >= 1 (10, 16, 22, 28, ...)")
        if stride2_padding not in STRIDE2_PADDINGS:
            raise expected("stride2_padding", stride2_padding, STRIDE2_PADDINGS)
        if dense_init not in DENSE_INITS:
            raise expected("dense_init", dense_init, DENSE_INITS)
        self.augmentation = augmentation
        self.generator = seeds.generator(seed, augment_stream)  # tracked: checkpoints save it
        init_seed = seeds.seed_generator(seed, "init")  # a fresh draw per layer, reproducible
        bn_options = {
            "momentum": bn_momentum,
            "epsilon": bn_epsilon,
            "synchronized": synchronized_bn,
        }
        self.stem = _conv(16, 3, 1, init_seed)
        self.leaky_slope = leaky_slope
        options = {
            "bn_options": bn_options,
            "leaky_slope": leaky_slope,
            "stride2_padding": stride2_padding,
        }
        units = _residual_units((depth - 4) // 6, width, init_seed, options)
        # One attribute per unit: tf.train.Checkpoint does not see into a Keras 3 list of layers.
        for name, unit in units.items():
            setattr(self, name, unit)
        self.unit_names = tuple(units)
        self.final_bn = BatchNorm(**bn_options)
        glorot = keras.initializers.VarianceScaling(
            1.0, "fan_avg", DENSE_INITS[dense_init], init_seed
        )  # Keras' GlorotNormal is the truncated one
        # float32 even under a mixed policy: the losses want float32 logits.
        self.classifier = keras.layers.Dense(
            num_classes, kernel_initializer=glorot, dtype="float32"
        )

    @property
    def units(self) -> list[ResidualUnit]:
        """The residual units in call order."""
        return [getattr(self, name) for name in self.unit_names]

    def build(self, input_shape: tuple) -> None:
        """Creates every variable from the input shape (the call cannot be traced symbolically)."""
        self.stem.build(input_shape)
        shape = self.stem.compute_output_shape(input_shape)
        for unit in self.units:
            unit.build(shape)
            shape = unit.compute_output_shape(shape)
        self.final_bn.build(shape)
        self.classifier.build((shape[0], shape[-1]))

    def call(self, x: Tensor, training: bool = False, update_bn_stats: bool = True) -> Tensor:
        if training:
            x = augment(x, self.augmentation, self.generator)
        bn = {"training": training, "update_bn_stats": update_bn_stats}
        h = self.stem(x)
        for unit in self.units:
            h = unit(h, **bn)
        h = tf.nn.leaky_relu(self.final_bn(h, **bn), self.leaky_slope)
        return self.classifier(tf.reduce_mean(h, axis=[1, 2]))  # global average pool
