"""The math of one MixMatch iteration against numpy twins and hand values (spec §3.1-3.4)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mixmatch import mixmatch as mm
from mixmatch.wrn import ResNet


def numpy_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_sharpen(p: np.ndarray, temperature: float) -> np.ndarray:
    q = p ** (1 / temperature)
    return q / q.sum(axis=-1, keepdims=True)


def numpy_mixup(x, targets, lam, permutation):
    def mix(values):
        weight = lam.reshape(-1, *[1] * (values.ndim - 1))
        return weight * values + (1 - weight) * values[permutation]

    return mix(x), mix(targets)


def numpy_interleave(tensors, offsets):
    chunks = [[t[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)] for t in tensors]
    for i in range(1, len(tensors)):
        chunks[0][i], chunks[i][i] = chunks[i][i], chunks[0][i]
    return [np.concatenate(row) for row in chunks]


def probabilities(rows: int, classes: int, seed: int = 0) -> np.ndarray:
    return numpy_softmax(np.random.default_rng(seed).normal(size=(rows, classes)) * 2)


def test_sharpen_at_one_half_squares_then_renormalises():
    got = mm.sharpen(tf.constant([[0.5, 0.3, 0.2]]), 0.5)
    np.testing.assert_allclose(got, [[0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38]], rtol=1e-6)
    p = probabilities(8, 10).astype(np.float32)
    np.testing.assert_allclose(mm.sharpen(p, 0.3), numpy_sharpen(p, 0.3), rtol=1e-5, atol=1e-7)


def test_sharpen_with_a_small_temperature_gives_one_hot():
    p = probabilities(6, 10).astype(np.float32)
    got = mm.sharpen(p, 0.001).numpy()  # p^1000 underflows; the log form does not
    np.testing.assert_allclose(got, np.eye(10)[p.argmax(axis=1)], atol=1e-6)


class StandIn:
    """A linear "model" that records the flags of every call."""

    def __init__(self, weight: np.ndarray) -> None:
        self.weight = tf.Variable(weight)
        self.calls = []

    def __call__(self, x, training=False, update_bn_stats=True):
        self.calls.append({"training": training, "update_bn_stats": update_bn_stats})
        return tf.reshape(x, [x.shape[0], -1]) @ self.weight


def test_guess_labels_averages_both_views_sharpens_and_blocks_gradients():
    rng = np.random.default_rng(0)
    u1, u2 = (rng.normal(size=(5, 2, 2, 1)).astype(np.float32) for _ in range(2))
    model = StandIn(rng.normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        q = mm.guess_labels(model, tf.constant(u1), tf.constant(u2), sharpen_temperature=0.3)
        total = tf.reduce_sum(q * tf.range(3, dtype=tf.float32))
    assert tape.gradient(total, model.weight) is None
    assert model.calls == 2 * [{"training": True, "update_bn_stats": False}]
    w = model.weight.numpy()
    mean = (numpy_softmax(u1.reshape(5, 4) @ w) + numpy_softmax(u2.reshape(5, 4) @ w)) / 2
    np.testing.assert_allclose(q, numpy_sharpen(mean, 0.3), rtol=1e-5)


def test_mixup_with_fixed_lambda_and_permutation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    targets = probabilities(4, 5).astype(np.float32)
    lam = np.array([0.5, 0.75, 1.0, 0.9], np.float32)
    permutation = np.array([2, 0, 1, 3])  # row 3 is a fixed point
    got_x, got_targets = mm.mixup(x, targets, lam, permutation)
    want_x, want_targets = numpy_mixup(x, targets, lam, permutation)
    np.testing.assert_allclose(got_x, want_x, rtol=1e-6)
    np.testing.assert_allclose(got_targets, want_targets, rtol=1e-6)
    # By hand: row 0 is the even mix of rows 0 and 2; row 2 keeps itself (λ' = 1).
    np.testing.assert_allclose(got_x[0], (x[0] + x[2]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(got_x[2], x[2])


def test_mixup_parameters_follow_max_of_beta_and_a_permutation():
    lam, permutation = mm.mixup_parameters(20_000, 0.75, tf.random.Generator.from_seed(0))
    lam = lam.numpy()
    assert lam.min() >= 0.5 and lam.max() <= 1.0
    beta = np.random.default_rng(0).beta(0.75, 0.75, size=200_000)
    want = np.maximum(beta, 1 - beta)
    assert lam.mean() == pytest.approx(want.mean(), abs=0.005)  # standard error about 0.001
    np.testing.assert_allclose(
        np.quantile(lam, [0.1, 0.25, 0.5, 0.75, 0.9]),
        np.quantile(want, [0.1, 0.25, 0.5, 0.75, 0.9]),
        atol=0.01,
    )
    np.testing.assert_array_equal(np.sort(permutation), np.arange(20_000))
    assert np.mean(permutation.numpy() == np.arange(20_000)) < 0.01


def test_mixup_parameters_replay_from_a_restored_generator(tmp_path):
    generator = tf.random.Generator.from_seed(5)
    path = tf.train.Checkpoint(generator=generator).save(str(tmp_path / "ckpt"))
    rows = tf.shape(tf.zeros((192, 2)))[0]  # a tensor, as the step passes it
    first = mm.mixup_parameters(rows, 0.75, generator)
    second = mm.mixup_parameters(rows, 0.75, generator)
    assert not np.array_equal(first[0], second[0])
    tf.train.Checkpoint(generator=generator).restore(path)
    replay = mm.mixup_parameters(rows, 0.75, generator)
    for a, b in zip(first, replay, strict=True):
        np.testing.assert_array_equal(a, b)


def row_ids(batch: int, parts: int) -> list[np.ndarray]:
    """Tensor t holds 100·t + row index, so every output row names its source."""
    return [100 * t + np.arange(batch) for t in range(parts)]


def test_interleave_swaps_chunks_at_offsets_0_21_42_64():
    got = mm.interleave(row_ids(64, 3))
    a, b, c = row_ids(64, 3)
    want = [
        np.concatenate([a[:21], b[21:42], c[42:]]),
        np.concatenate([b[:21], a[21:42], b[42:]]),
        np.concatenate([c[:21], c[21:42], a[42:]]),
    ]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_interleave_gives_the_leftover_rows_to_the_last_chunks():
    got = mm.interleave(row_ids(32, 3))  # 32 = 3·10 + 2: chunks of 10, 11, 11
    want = numpy_interleave(row_ids(32, 3), [0, 10, 21, 32])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize(("batch", "parts"), [(64, 3), (32, 3), (7, 2), (10, 4)])
def test_interleave_twice_returns_the_input(batch, parts):
    rng = np.random.default_rng(batch)
    tensors = [rng.normal(size=(batch, 3)).astype(np.float32) for _ in range(parts)]
    for got, want in zip(mm.interleave(mm.interleave(tensors)), tensors, strict=True):
        np.testing.assert_array_equal(got, want)


def test_interleave_in_a_graph_with_an_unknown_batch():
    spec = tf.TensorSpec([None, 2], tf.float32)
    swap = tf.function(lambda a, b, c: mm.interleave([a, b, c]), input_signature=[spec] * 3)
    tensors = [np.full((64, 2), t, np.float32) for t in range(3)]
    got = swap(*tensors)[0].numpy()[:, 0]
    np.testing.assert_array_equal(got, [0] * 21 + [1] * 21 + [2] * 22)


def test_soft_cross_entropy_is_a_mean_over_rows():
    targets = np.array([[1.0, 0.0], [0.5, 0.5]], np.float32)
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]], np.float32)  # softmax 0.5/0.5, 0.75/0.25
    want = (-np.log(0.5) - 0.5 * np.log(0.75) - 0.5 * np.log(0.25)) / 2
    assert float(mm.soft_cross_entropy(targets, logits)) == pytest.approx(want, rel=1e-6)


def test_mean_squared_error_divides_by_rows_and_classes():
    targets = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]], np.float32)
    logits = np.zeros((2, 4), np.float32)  # softmax 0.25 everywhere
    # Row 0: 0.75² + 3·0.25² = 0.75; row 1: 0. Over 2 rows · 4 classes: 0.09375.
    assert float(mm.mean_squared_error(targets, logits)) == pytest.approx(0.09375, rel=1e-6)


def test_lambda_u_ramps_linearly_over_16384_iterations():
    got = mm.lambda_u(np.array([0, 4096, 8192, 16_384, 1_000_000]), w_match=75.0)
    np.testing.assert_allclose(got, [0.0, 18.75, 37.5, 75.0, 75.0], rtol=1e-6)
    assert float(mm.lambda_u(tf.constant(50, tf.int64), 10.0, warmup_iterations=100)) == 5.0


def tiny_model() -> ResNet:
    model = ResNet(3, seed=0, filters=4, repeat=2, scales=2)
    model.build((None, 8, 8, 3))
    rng = np.random.default_rng(0)
    for variable in model.variables:  # zero biases and unit gammas would hide a wrong decay
        variable.assign(rng.normal(size=variable.shape))
    return model


def test_weight_decay_scales_only_kernels():
    model = tiny_model()
    kernels = mm.kernel_variables(model)
    # stem, 2 convs in each of 4 blocks, 2 projections, dense
    assert len(kernels) == 12 and {len(k.shape) for k in kernels} == {2, 4}
    before = {v.path: v.numpy().copy() for v in model.variables}
    mm.decay_kernels(kernels, 0.02 * 0.002)
    decayed = {k.path for k in kernels}
    for variable in model.variables:
        old = before[variable.path]
        if variable.path in decayed:
            np.testing.assert_allclose(variable.numpy(), old * (1 - 4e-5), rtol=2e-7)
            assert not np.array_equal(variable.numpy(), old)
        else:  # biases, BN gamma and beta, moving statistics
            np.testing.assert_array_equal(variable.numpy(), old)


def test_ema_update_after_two_steps():
    shadow = [keras.Variable(np.array([0.0, 10.0], np.float32))]
    weights = [keras.Variable(np.array([1.0, 20.0], np.float32))]
    mm.ema_update(shadow, weights)  # [0.001, 10.01]
    weights[0].assign([3.0, 20.0])
    mm.ema_update(shadow, weights)
    np.testing.assert_allclose(shadow[0].numpy(), [0.003999, 10.01999], rtol=1e-6)
    np.testing.assert_array_equal(weights[0].numpy(), [3.0, 20.0])
