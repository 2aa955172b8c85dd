"""WRN-28-2, its batch norm and its augmentation against spec §2, §1.6 and numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.augment import Augmentation, augment
from ns3l.training.distribute import make_strategy
from ns3l.training.layers import BatchNorm
from realistic_ssl.wrn import AUGMENTATIONS, CIFAR_AUGMENTATION, WideResNet, augmentation_for

NO_NOISE = Augmentation(flip=True, translate=2, noise_std=0.0)


def tiny_model(augmentation: Augmentation = CIFAR_AUGMENTATION, seed: int = 0) -> WideResNet:
    model = WideResNet(3, augmentation=augmentation, seed=seed, depth=10, width=1)
    model.build((None, 8, 8, 3))
    return model


def images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)


@pytest.mark.parametrize(("num_classes", "count"), [(10, 1_467_610), (100, 1_479_220)])
def test_wrn_28_2_has_the_spec_parameter_count(num_classes, count):
    model = WideResNet(num_classes, augmentation=CIFAR_AUGMENTATION, seed=0)
    model.build((None, 32, 32, 3))
    assert trainable_count(model) == count
    # Moving mean and variance of 25 BN layers: 2 per unit (12 units) plus the final one.
    assert len(model.non_trainable_variables) == 2 * 25


def test_depth_must_be_six_n_plus_four():
    with pytest.raises(UsageError, match="depth=12: expected 6·n"):
        WideResNet(10, augmentation=CIFAR_AUGMENTATION, seed=0, depth=12)


def test_same_seed_gives_same_weights_and_he_fan_out_scale():
    first, second = tiny_model(seed=3), tiny_model(seed=3)
    for a, b in zip(first.variables, second.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    big = WideResNet(10, augmentation=CIFAR_AUGMENTATION, seed=0)
    big.build((None, 32, 32, 3))
    kernel = big.units[-1].conv_out.kernel.numpy()  # 3x3x128x128: std sqrt(2 / (9·128))
    assert kernel.std() == pytest.approx(np.sqrt(2 / (9 * 128)), rel=0.01)


def test_residual_units_follow_the_spec_wiring_and_tf_same_padding():
    model = tiny_model()  # width 1: unit_1_0 is 16->16 with abr, unit_2_0 16->32 at stride 2
    x = images((2, 8, 8, 16))

    def activate(t):  # lrelu(BN(t)) of a fresh BN in inference mode: t / sqrt(1 + 1e-3)
        return tf.nn.leaky_relu(t / 1.001**0.5, 0.1)

    def conv(t, layer, stride):  # TF SAME: 3x3 pads 1 and 1, or 0 and 1 at stride 2 on 8x8
        before = 0 if stride == 2 else 1
        pad = (
            [[0, 0], [before, 1], [before, 1], [0, 0]]
            if layer.kernel.shape[0] == 3
            else [[0, 0]] * 4
        )
        return tf.nn.conv2d(tf.pad(t, pad), layer.kernel.numpy(), stride, "VALID")

    def residual(unit, t, stride):
        return conv(activate(conv(activate(t), unit.conv_in, stride)), unit.conv_out, 1)

    first, second = model.unit_1_0, model.unit_2_0
    # unit_1_0: the shortcut is the activated input; unit_2_0: the projected raw input.
    want_first = residual(first, x, 1) + activate(x)
    np.testing.assert_allclose(first(x), want_first, rtol=1e-4, atol=1e-4)
    want_second = residual(second, x, 2) + conv(x, second.projection, 2)
    np.testing.assert_allclose(second(x), want_second, rtol=1e-4, atol=1e-4)
    assert first.projection is None and model.unit_3_0.projection is not None


def test_pt_stride2_convs_pad_one_pixel_on_every_side():
    model = WideResNet(10, augmentation=CIFAR_AUGMENTATION, seed=0, depth=10, width=1,
                       stride2_padding="symmetric")  # fmt: skip
    model.build((None, 8, 8, 3))
    unit = model.unit_2_0  # 16 -> 32 at stride 2
    x = images((2, 8, 8, 16))
    activated = tf.nn.leaky_relu(x / 1.001**0.5, 0.1)  # fresh BN in inference mode
    padded = tf.pad(activated, [[0, 0], [1, 1], [1, 1], [0, 0]])  # [PT]: padding=1
    h = tf.nn.conv2d(padded, unit.conv_in.kernel.numpy(), 2, "VALID")  # 10x10 -> 4x4
    h = tf.nn.leaky_relu(h / 1.001**0.5, 0.1)
    h = tf.nn.conv2d(h, unit.conv_out.kernel.numpy(), 1, "SAME")
    want = h + tf.nn.conv2d(x, unit.projection.kernel.numpy(), 2, "VALID")
    np.testing.assert_allclose(unit(x), want, rtol=1e-4, atol=1e-4)
    assert model(tf.zeros((1, 8, 8, 3))).shape == (1, 10)
    with pytest.raises(UsageError, match="stride2_padding='valid': expected one of same"):
        WideResNet(10, augmentation=CIFAR_AUGMENTATION, seed=0, stride2_padding="valid")


@pytest.mark.parametrize(
    ("dense_init", "truncated"), [("glorot_truncated", True), ("glorot_untruncated", False)]
)
def test_the_classifier_kernel_is_glorot_normal_truncated_or_not(dense_init, truncated):
    model = WideResNet(100, augmentation=CIFAR_AUGMENTATION, seed=0, depth=10, width=4,
                       dense_init=dense_init)  # fmt: skip
    model.build((None, 8, 8, 3))
    kernel = model.classifier.kernel.numpy()  # 256 x 100: std sqrt(2 / 356)
    std = np.sqrt(2 / (256 + 100))
    assert kernel.std() == pytest.approx(std, rel=0.05)
    # A truncated normal (Keras rescales it to the same std) never goes beyond 2 of its scales.
    beyond = np.abs(kernel).max() / std
    assert (beyond < 2.3) == truncated


def numpy_batch_norm(x, mean, variance, gamma, beta, epsilon=1e-3):
    mean, variance, gamma, beta = map(np.asarray, (mean, variance, gamma, beta))
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta


def built_batch_norm(**kwargs) -> BatchNorm:
    """A BatchNorm on 3 channels with non-trivial gamma, beta and moving statistics."""
    layer = BatchNorm(**kwargs)
    layer.build((None, 4, 4, 3))
    layer.gamma.assign([0.5, 2.0, 1.0])
    layer.beta.assign([0.1, -0.3, 0.0])
    layer.moving_mean.assign([1.0, -1.0, 0.5])
    layer.moving_variance.assign([2.0, 0.5, 1.0])
    return layer


def test_batch_norm_pass_without_update_uses_batch_moments_and_keeps_moving_ones():
    layer = built_batch_norm()
    x = images((8, 4, 4, 3)) * 3 + 2
    got = tf.function(lambda x: layer(x, training=True, update_bn_stats=False))(x)
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    want = numpy_batch_norm(x, mean, variance, [0.5, 2.0, 1.0], [0.1, -0.3, 0.0])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, -1.0, 0.5])
    np.testing.assert_array_equal(layer.moving_variance.numpy(), [2.0, 0.5, 1.0])


def test_batch_norm_update_moves_statistics_by_one_thousandth_of_the_gap():
    layer = built_batch_norm()
    x = images((2, 4, 4, 3)) * 3 + 2  # 32 values per channel
    tf.function(lambda x: layer(x, training=True, update_bn_stats=True))(x)
    # The moving variance takes the unbiased batch variance, n/(n - 1) = 32/31 times the biased
    # one the batch is normalised with: TF1's fused kernel and PyTorch both do (mixmatch.md §2.3).
    mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2), ddof=1)
    moving_mean, moving_variance = np.array([1.0, -1.0, 0.5]), np.array([2.0, 0.5, 1.0])
    want_mean = moving_mean + 0.001 * (mean - moving_mean)
    want_variance = moving_variance + 0.001 * (variance - moving_variance)
    np.testing.assert_allclose(layer.moving_mean.numpy(), want_mean, rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), want_variance, rtol=1e-6)


def test_batch_norm_inference_uses_moving_statistics():
    layer = built_batch_norm(epsilon=1e-5)
    x = images((8, 4, 4, 3))
    got = layer(x, training=False)
    gamma, beta = [0.5, 2.0, 1.0], [0.1, -0.3, 0.0]
    want = numpy_batch_norm(x, [1.0, -1.0, 0.5], [2.0, 0.5, 1.0], gamma, beta, epsilon=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def per_replica(strategy: tf.distribute.Strategy, halves: list[np.ndarray]):
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(halves[context.replica_id_in_sync_group])
    )


@pytest.mark.parametrize("synchronized", [False, True])
def test_batch_norm_under_mirrored_strategy(synchronized):
    strategy = make_strategy("mirrored")
    with strategy.scope():
        layer = BatchNorm(synchronized=synchronized)
        layer.build((None, 4, 4, 3))
    halves = [images((4, 4, 4, 3), seed=1), images((4, 4, 4, 3), seed=2) * 2 + 3]
    step = tf.function(lambda x: strategy.run(lambda x: layer(x, training=True), (x,)))
    outputs = strategy.experimental_local_results(step(per_replica(strategy, halves)))
    whole = np.concatenate(halves)
    for half, output in zip(halves, outputs, strict=True):
        source = whole if synchronized else half
        mean, variance = source.mean(axis=(0, 1, 2)), source.var(axis=(0, 1, 2))
        np.testing.assert_allclose(output, numpy_batch_norm(half, mean, variance, 1, 0), atol=2e-4)
    # Each replica moves the statistics towards its moments; the mirrored value is their mean.
    # Equal halves make that the whole batch's mean in both modes.
    for value in strategy.experimental_local_results(layer.moving_mean.value):
        np.testing.assert_allclose(value, 0.001 * whole.mean(axis=(0, 1, 2)), rtol=1e-4)


def exact_match_index(image: np.ndarray, candidates: list[np.ndarray]) -> int:
    """The one candidate `image` equals; fails unless exactly one does."""
    matches = [i for i, candidate in enumerate(candidates) if np.array_equal(image, candidate)]
    assert len(matches) == 1, matches
    return matches[0]


def reflect_crops(image: np.ndarray, pixels: int = 2) -> list[np.ndarray]:
    """The (2·pixels + 1)² crops of the reflect-padded image, row offset major."""
    height, width, _ = image.shape
    padded = np.pad(image, [(pixels, pixels), (pixels, pixels), (0, 0)], mode="reflect")
    size = 2 * pixels + 1
    return [padded[i : i + height, j : j + width] for i in range(size) for j in range(size)]


def test_flip_is_drawn_per_example_with_probability_one_half():
    x = images((200, 5, 6, 2))
    flip_only = Augmentation(flip=True, translate=0, noise_std=0.0)
    got = augment(tf.constant(x), flip_only, tf.random.Generator.from_seed(1)).numpy()
    flipped = [
        exact_match_index(g, [image, image[:, ::-1]]) for g, image in zip(got, x, strict=True)
    ]
    assert 70 < sum(flipped) < 130  # Binomial(200, 0.5): mean 100, std 7


def test_translation_is_a_reflect_pad_crop_with_its_own_offset_per_example():
    x = images((200, 5, 6, 2))  # H != W, so swapped axes would not match
    got = augment(tf.constant(x), NO_NOISE, tf.random.Generator.from_seed(2)).numpy()
    picks = [
        exact_match_index(g, reflect_crops(image) + reflect_crops(image[:, ::-1]))
        for g, image in zip(got, x, strict=True)
    ]
    offsets = [pick % 25 for pick in picks]
    assert len(set(offsets)) == 25  # every shift in {-2..2}² occurs
    assert 70 < sum(pick >= 25 for pick in picks) < 130  # flipped before cropping


def test_pt_draws_one_flip_and_one_shift_for_the_whole_batch():
    x = images((64, 5, 6, 2))
    per_batch = Augmentation(flip=True, translate=2, noise_std=0.0, per_batch=True)
    picks = set()
    for seed in range(12):
        got = augment(tf.constant(x), per_batch, tf.random.Generator.from_seed(seed)).numpy()
        batch_picks = {
            exact_match_index(g, reflect_crops(image) + reflect_crops(image[:, ::-1]))
            for g, image in zip(got, x, strict=True)
        }
        assert len(batch_picks) == 1  # every image flipped and shifted alike
        picks |= batch_picks
    assert len(picks) > 6  # ... and another draw for the next batch


def test_noise_is_gaussian_with_std_0_15():
    zeros = tf.zeros((100, 32, 32, 3))
    noise = augment(zeros, CIFAR_AUGMENTATION, tf.random.Generator.from_seed(3))  # flips zeros
    assert float(tf.math.reduce_std(noise)) == pytest.approx(0.15, rel=0.03)
    assert abs(float(tf.reduce_mean(noise))) < 0.01


def test_svhn_preset_translates_but_never_flips_and_adds_no_noise():
    x = images((100, 6, 6, 3))
    got = augment(tf.constant(x), augmentation_for("svhn"), tf.random.Generator.from_seed(4))
    offsets = [
        exact_match_index(g, reflect_crops(image)) for g, image in zip(got.numpy(), x, strict=True)
    ]
    assert len(set(offsets)) > 20


def test_presets_per_data_set_and_the_default_for_other_names():
    assert augmentation_for("cifar100") == Augmentation(flip=True, translate=2, noise_std=0.15)
    assert augmentation_for("digits") == Augmentation(flip=False, translate=2, noise_std=0.15)
    assert augmentation_for("oxford_flowers102") == CIFAR_AUGMENTATION
    assert augmentation_for("none") == Augmentation(flip=False, translate=0, noise_std=0.0)


def test_training_call_augments_inside_the_model_and_inference_does_not():
    x = images((16, 8, 8, 3))
    model, plain = tiny_model(CIFAR_AUGMENTATION, seed=5), tiny_model(AUGMENTATIONS["none"], seed=5)
    state = model.generator.state.numpy()
    np.testing.assert_array_equal(model(x), model(x))
    np.testing.assert_allclose(model(x), plain(x), rtol=1e-6)  # same weights, no augmentation
    np.testing.assert_array_equal(model.generator.state.numpy(), state)  # no draw
    twin = tf.random.Generator.from_state(state, model.generator.algorithm)  # a copy
    got = model(x, training=True, update_bn_stats=False)
    want = plain(augment(tf.constant(x), CIFAR_AUGMENTATION, twin), training=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    again = model(x, training=True, update_bn_stats=False)
    assert np.abs(again - got).min() > 0  # a fresh draw per call


def test_gradient_reaches_the_input_through_the_augmentation():
    model, x = tiny_model(), tf.constant(images((4, 8, 8, 3)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = model(x, training=True)[:, 0]
    assert float(tf.reduce_sum(tf.abs(tape.gradient(logit, x)))) > 0


def test_checkpoint_restores_weights_and_augmentation_stream(tmp_path):
    x = images((8, 8, 8, 3))
    model = tiny_model(seed=6)
    model(x, training=True)  # move the generator and the BN statistics off their start
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    want = model(x, training=True, update_bn_stats=False)
    other = tiny_model(seed=7)
    tf.train.Checkpoint(model=other).restore(path).assert_consumed()
    np.testing.assert_array_equal(other(x, training=True, update_bn_stats=False), want)
    # Every variable is in the checkpoint (Keras 3 lists of layers would not be) and the RNG too.
    saved = {name for name, _ in tf.train.list_variables(path) if name.startswith("model/")}
    assert len(saved) == len(model.variables) + 1
    assert "model/generator/_state_var/.ATTRIBUTES/VARIABLE_VALUE" in saved


def test_mirrored_strategy_training_call_uses_one_stream_per_replica(tmp_path):
    strategy = make_strategy("mirrored")
    with strategy.scope():
        model, restored = tiny_model(seed=0), tiny_model(seed=1)
    x = per_replica(strategy, [images((4, 8, 8, 3))] * 2)

    run = tf.function(lambda model, x: strategy.run(lambda x: model(x, training=True), (x,)))

    def step(model, x):  # one replica's logits [4, 3] per replica
        return [t.numpy() for t in strategy.experimental_local_results(run(model, x))]

    first, second = step(model, x)
    assert first.shape == (4, 3)
    assert not np.allclose(first, second)  # same input, different augmentation
    assert not np.allclose(model.final_bn.moving_mean.numpy(), 0)
    # A resumed run draws the same per-replica augmentations as the saved one.
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    want = step(model, x)
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    for got, expected in zip(step(restored, x), want, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny_model()
        logits = model(images((2, 8, 8, 3)), training=True)
        assert model.stem.compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert logits.dtype == tf.float32
    assert model.units[0].bn_in.moving_mean.dtype == "float32"
