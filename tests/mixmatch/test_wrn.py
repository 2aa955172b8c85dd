"""The MixMatch ResNet against spec §2: parameter counts, initializers, wiring, BN, checkpoints."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mixmatch.wrn import ResNet, default_scales


def tiny_model(seed: int = 0) -> ResNet:
    """filters 4, 2 blocks per scale, 2 scales: 16 → 4 channels at scale 0, 4 → 8 at scale 1."""
    model = ResNet(3, seed=seed, filters=4, repeat=2, scales=2)
    model.build((None, 8, 8, 3))
    return model


def randomize(model: ResNet, seed: int = 0) -> None:
    """Non-trivial biases, BN affine parameters and moving statistics, so each one matters."""
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if variable.name in ("bias", "beta", "moving_mean"):
            variable.assign(rng.normal(0.0, 0.3, variable.shape))
        elif variable.name in ("gamma", "moving_variance"):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape))


def images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)


def test_default_scales_follow_the_image_width():
    assert [default_scales(width) for width in (16, 32, 96)] == [2, 3, 5]


def test_cifar_model_has_the_spec_parameter_count_and_initializers():
    model = ResNet(10, seed=0)
    model.build((None, 32, 32, 3))
    assert trainable_count(model) == 1_469_642
    # Moving mean and variance of 25 BN layers: 2 per block (12 blocks) plus the head's.
    assert len(model.non_trainable_variables) == 2 * 25
    kernel = model.block_2_3.conv_out.kernel.numpy()  # 3x3x128x128: std sqrt(2 / (9·128))
    std = np.sqrt(2 / (9 * 128))
    assert kernel.std() == pytest.approx(std, rel=0.01)
    # Untruncated: a truncated normal would have nothing beyond 2 std, this has ~4.6%.
    assert 0.04 < np.mean(np.abs(kernel) > 2 * std) < 0.05
    assert isinstance(model.classifier.kernel_initializer, keras.initializers.GlorotNormal)


def test_stl10_model_has_the_spec_parameter_count():
    model = ResNet(10, seed=0, scales=4)
    model.build((None, 96, 96, 3))
    assert trainable_count(model) == 5_933_770


def test_every_conv_and_the_dense_layer_have_a_zero_bias_at_init():
    model = tiny_model()
    kernels = [v for v in model.variables if v.name == "kernel"]
    biases = [v for v in model.variables if v.name == "bias"]
    # stem + 2 convs in each of 4 blocks + 2 projections (first block of each scale) + dense
    assert len(kernels) == len(biases) == 12
    for bias in biases:
        np.testing.assert_array_equal(bias.numpy(), 0.0)


def test_same_seed_gives_same_weights():
    first, second, other = tiny_model(seed=3), tiny_model(seed=3), tiny_model(seed=4)
    for a, b in zip(first.variables, second.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(first.stem.kernel.numpy(), other.stem.kernel.numpy())


def reference_logits(model: ResNet, x: np.ndarray, scales: int, repeat: int) -> tf.Tensor:
    """Spec §2.1 written out with the model's weights, inference-mode BN."""

    def conv(t, layer, stride):
        return tf.nn.conv2d(t, layer.kernel.numpy(), stride, "SAME") + layer.bias.numpy()

    def activate(t, bn):  # lrelu(BN(t)) with the moving statistics, epsilon 1e-3
        gamma, beta, mean, variance = (v.numpy() for v in bn.variables)
        return tf.nn.leaky_relu(gamma * (t - mean) / np.sqrt(variance + 1e-3) + beta, 0.1)

    h = conv(x, model.stem, 1)
    for scale in range(scales):
        for index in range(repeat):
            block = getattr(model, f"block_{scale}_{index}")
            stride = 2 if scale > 0 and index == 0 else 1
            a = activate(h, block.bn_in)
            middle = activate(conv(a, block.conv_in, stride), block.bn_mid)
            residual = conv(middle, block.conv_out, 1)
            if index == 0:  # projection: scale 0 reads the activated input, later ones raw h
                shortcut = conv(a if scale == 0 else h, block.projection, stride)
            else:
                shortcut = h
            h = residual + shortcut
    pooled = tf.reduce_mean(activate(h, model.final_bn), axis=[1, 2])
    return pooled @ model.classifier.kernel.numpy() + model.classifier.bias.numpy()


def test_forward_pass_follows_the_spec_layout_and_shortcut_rules():
    model = tiny_model()
    randomize(model)
    x = images((2, 8, 8, 3))
    got = model(x, training=False)
    assert got.shape == (2, 3) and got.dtype == tf.float32
    np.testing.assert_allclose(got, reference_logits(model, x, 2, 2), rtol=1e-4, atol=1e-4)
    assert [block.projection is not None for block in model.blocks] == [True, False, True, False]
    assert model.block_0_0.activate_before_residual
    assert not any(block.activate_before_residual for block in model.blocks[1:])
    assert model.block_1_0.projection.strides == (2, 2)
    assert model.block_1_0.projection.kernel.shape == (1, 1, 4, 8)


def moving_statistics(model: ResNet) -> list[np.ndarray]:
    return [variable.numpy().copy() for variable in model.non_trainable_variables]


def test_update_bn_stats_decides_whether_moving_statistics_move():
    model = tiny_model()
    x = images((4, 8, 8, 3)) * 2 + 1
    before = moving_statistics(model)
    model(x, training=True, update_bn_stats=False)
    for old, new in zip(before, moving_statistics(model), strict=True):
        np.testing.assert_array_equal(old, new)
    model(x, training=True, update_bn_stats=True)
    for old, new in zip(before, moving_statistics(model), strict=True):
        assert np.all(old != new)


def test_checkpoint_holds_every_variable(tmp_path):
    model = tiny_model(seed=1)
    randomize(model)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = [
        tuple(shape)
        for name, shape in tf.train.list_variables(path)
        if name.startswith("model/") and name.endswith("VARIABLE_VALUE")
    ]
    assert sorted(saved) == sorted(tuple(v.shape) for v in model.variables)
    restored = tiny_model(seed=2)
    tf.train.Checkpoint(model=restored).restore(path).assert_consumed()
    for a, b in zip(model.variables, restored.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_logits_are_float32_under_a_mixed_policy():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = tiny_model()
        logits = model(images((2, 8, 8, 3)), training=True, update_bn_stats=False)
    finally:
        keras.config.set_dtype_policy(policy)
    assert model.stem.compute_dtype == "float16"
    assert logits.dtype == tf.float32
