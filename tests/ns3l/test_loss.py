"""ns3l.loss against a numpy twin, hand-computed rows, the analytic gradient and the PL identity."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ns3l.loss import (
    MAX_ROW_LOSS,
    NS3L,
    NS3LLoss,
    negatives_below,
    ns3l_loss,
    ns3l_per_example,
    random_negatives,
)
from ns3l.training.distribute import make_strategy


def numpy_ns3l(targets, logits, threshold, mask=None):
    """The released ns3l.py in float64 numpy: -log(clamp(1 - Σ_{q<T} p, 1e-8, 1)), mean over B."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    s = (p * (targets < threshold)).sum(axis=1)
    rows = -np.log(np.clip(1.0 - s, 1e-8, 1.0))
    mask = np.ones(len(z)) if mask is None else mask
    return (rows * mask).sum() / len(z)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("numerics", ["stable", "reference"])
@pytest.mark.parametrize("num_classes,threshold", [(10, 0.04), (100, 0.004), (3, 0.2)])
def test_matches_numpy_on_random_inputs(num_classes, threshold, numerics):
    rng = np.random.default_rng(num_classes)
    logits = rng.normal(scale=3.0, size=(64, num_classes)).astype(np.float32)
    targets = softmax(rng.normal(scale=3.0, size=(64, num_classes))).astype(np.float32)
    mask = (rng.random(64) < 0.5).astype(np.float32)
    want = numpy_ns3l(targets, logits, threshold, mask)
    got = ns3l_loss(targets, logits, threshold, mask=mask, numerics=numerics)
    assert want > 0.01  # the case is not trivially zero
    # The reference's float32 1 - s loses a few digits to cancellation (2e-5 at K = 100).
    np.testing.assert_allclose(float(got), want, rtol=1e-5 if numerics == "stable" else 1e-4)


def test_hand_computed_rows():
    probs = np.array([[0.5, 0.3, 0.15, 0.05]] * 3)
    targets = np.array(
        [
            [0.6, 0.3, 0.03, 0.07],  # class 2 negative: s = 0.15
            [0.4, 0.3, 0.2, 0.1],  # no class below 0.04: contributes 0
            [0.9, 0.06, 0.01, 0.03],  # classes 2 and 3 negative: s = 0.2
        ]
    )
    rows = ns3l_per_example(negatives_below(targets, 0.04), np.log(probs))
    np.testing.assert_allclose(rows, [-math.log(0.85), 0.0, -math.log(0.8)], rtol=1e-6, atol=1e-7)
    got = ns3l_loss(targets, np.log(probs), threshold=0.04)
    np.testing.assert_allclose(float(got), (0.1625189 + 0.2231436) / 3, rtol=1e-6)


def test_threshold_is_strict():
    targets = np.array([[0.04, 0.96]])
    assert not bool(negatives_below(targets, 0.04)[0, 0])
    assert bool(negatives_below(targets, 0.0400001)[0, 0])


def test_gradient_matches_analytic_form():
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(scale=2.0, size=(16, 10)), tf.float32)
    targets = softmax(rng.normal(scale=3.0, size=(16, 10)))
    negatives = (targets < 0.04).astype(np.float64)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        total = tf.reduce_sum(ns3l_per_example(targets < 0.04, logits))
    got = tape.gradient(total, logits).numpy()
    p = softmax(logits.numpy().astype(np.float64))
    s = (negatives * p).sum(axis=1, keepdims=True)
    want = p * (negatives - s) / (1.0 - s)  # ∂ℓ_i/∂z_ij = p_ij (neg_ij - s_i) / (1 - s_i)
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_targets_receive_no_gradient():
    targets = tf.constant(softmax(np.random.default_rng(2).normal(size=(4, 5))), tf.float32)
    logits = tf.constant(np.random.default_rng(3).normal(size=(4, 5)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(targets)
        loss = ns3l_loss(targets, logits, threshold=0.15)
    assert float(loss) > 0
    grad = tape.gradient(loss, targets)
    assert grad is None or not np.any(grad.numpy())


def test_clamp_caps_a_row_at_minus_log_1e8_with_zero_gradient():
    # Row 0: the only non-negative class has probability e^-60 -> capped. Row 1: every class is
    # negative (no complement at all) -> capped, and still finite with a zero gradient.
    logits = tf.constant([[30.0, -30.0, 0.0], [1.0, 2.0, 3.0]])
    targets = np.array([[0.01, 0.98, 0.01], [0.1, 0.1, 0.1]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        rows = ns3l_per_example(negatives_below(targets, 0.5), logits)
    np.testing.assert_allclose(rows, [MAX_ROW_LOSS, MAX_ROW_LOSS], rtol=1e-6)
    assert MAX_ROW_LOSS == pytest.approx(18.420681)
    np.testing.assert_array_equal(tape.gradient(rows, logits).numpy(), np.zeros((2, 3)))
    probs = tf.constant([[1.0 - 2e-9, 1e-9, 1e-9], [0.25, 0.25, 0.5]])  # sums exact in float32
    capped = ns3l_per_example(negatives_below(targets, 0.5), probs, from_logits=False)
    np.testing.assert_allclose(capped, [MAX_ROW_LOSS, MAX_ROW_LOSS], rtol=1e-6)


def test_logsumexp_form_stays_exact_where_one_minus_s_rounds_to_zero():
    # s = 1 - e^-12 is 1.0 in float32 probabilities, yet -log(1 - s) = 12 exactly.
    logits = np.array([[12.0, 0.0]], np.float32)
    got = ns3l_per_example(np.array([[True, False]]), logits)
    np.testing.assert_allclose(got, [12.0 + math.log1p(math.exp(-12.0))], rtol=1e-6)


def test_mask_divides_by_the_whole_batch():
    logits = np.log(np.array([[0.7, 0.2, 0.1]] * 4))
    targets = np.array([[0.9, 0.01, 0.09]] * 4)  # class 1 negative: ℓ = -log 0.8 per row
    mask = np.array([1.0, 0.0, 1.0, 0.0])
    got = float(ns3l_loss(targets, logits, 0.04, mask))
    np.testing.assert_allclose(got, -2 * math.log(0.8) / 4, rtol=1e-6)  # not / Σ mask = 2


def test_probabilities_input_matches_logits_input():
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=2.0, size=(32, 10)).astype(np.float32)
    targets = softmax(rng.normal(scale=3.0, size=(32, 10)))
    from_logits = ns3l_loss(targets, logits)
    from_probs = ns3l_loss(targets, tf.nn.softmax(logits), from_logits=False)
    np.testing.assert_allclose(float(from_probs), float(from_logits), rtol=1e-5)


def test_two_classes_equal_hard_pseudo_labeling_at_confidence_one_minus_t():
    """K = 2, targets = own detached probabilities: NS3L(T) = mean_i 1[max p_i > 1-T] CE(argmax)."""
    rng = np.random.default_rng(5)
    logits = tf.constant(rng.normal(scale=4.0, size=(256, 2)), tf.float32)
    threshold = 0.1
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        probs = tf.nn.softmax(logits)
        ns3l = ns3l_loss(tf.stop_gradient(probs), logits, threshold)
        confident = tf.cast(tf.reduce_max(probs, axis=1) > 1 - threshold, tf.float32)
        pseudo = tf.argmax(probs, axis=1)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(pseudo, logits)
        pl = tf.reduce_mean(tf.stop_gradient(confident) * xent)
    assert 20 < float(tf.reduce_sum(confident)) < 236  # both kinds of rows are present
    np.testing.assert_allclose(float(ns3l), float(pl), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(ns3l, logits), tape.gradient(pl, logits), atol=1e-6)


def test_keras_loss_equals_function_and_uses_sample_weight_as_mask():
    rng = np.random.default_rng(6)
    logits = rng.normal(scale=3.0, size=(20, 10)).astype(np.float32)
    targets = softmax(rng.normal(scale=3.0, size=(20, 10))).astype(np.float32)
    weights = (rng.random(20) < 0.5).astype(np.float32)
    loss = NS3LLoss(threshold=0.04)
    want = ns3l_loss(targets, logits, 0.04, mask=weights)
    np.testing.assert_allclose(float(loss(targets, logits, sample_weight=weights)), float(want))
    np.testing.assert_allclose(float(loss(targets, logits)), numpy_ns3l(targets, logits, 0.04))


def test_keras_loss_serialises_every_argument():
    loss = NS3LLoss(threshold=0.005, from_logits=False, name="neg")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, NS3LLoss)
    assert again.get_config() == loss.get_config()
    assert again.sampler.threshold == 0.005 and again.from_logits is False


def test_compiled_model_keeps_its_threshold_after_save_and_load(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer="adam", loss=NS3LLoss(threshold=0.3))
    x = np.random.default_rng(7).normal(size=(8, 4)).astype(np.float32)
    targets = softmax(np.random.default_rng(8).normal(scale=3.0, size=(8, 3)))
    model.fit(x, targets, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.loss.sampler.threshold == 0.3
    want = numpy_ns3l(targets, loaded.predict(x, verbose=0), 0.3)
    np.testing.assert_allclose(loaded.evaluate(x, targets, verbose=0), want, rtol=1e-5)


def tiny_model_with_layer(weight, **kwargs):
    inputs = keras.Input((6,))
    logits = keras.layers.Dense(4, name="head")(inputs)
    return keras.Model(inputs, NS3L(weight=weight, **kwargs)(logits))


def test_layer_adds_weighted_loss_on_its_own_detached_softmax_and_passes_logits():
    model = tiny_model_with_layer(2.5, threshold=0.2)
    x = tf.constant(np.random.default_rng(9).normal(scale=2.0, size=(32, 6)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        logits = model(x, training=True)
        added = tf.add_n(model.losses)
        want = 2.5 * ns3l_loss(tf.stop_gradient(tf.nn.softmax(logits)), logits, 0.2)
    np.testing.assert_allclose(logits, model.get_layer("head")(x))
    assert float(want) > 0.05
    np.testing.assert_allclose(float(added), float(want), rtol=1e-6)
    kernel = model.get_layer("head").kernel
    np.testing.assert_allclose(tape.gradient(added, kernel), tape.gradient(want, kernel), atol=1e-6)


def test_layer_with_given_targets_and_sample_mask():
    logits_in, targets_in, mask_in = keras.Input((3,)), keras.Input((3,)), keras.Input(())
    out = NS3L(weight=1.0, threshold=0.04)(logits_in, targets=targets_in, sample_mask=mask_in)
    model = keras.Model([logits_in, targets_in, mask_in], out)
    logits = np.log(np.array([[0.7, 0.2, 0.1]] * 2, np.float32))
    targets = np.array([[0.9, 0.01, 0.09]] * 2, np.float32)
    model([logits, targets, np.array([1.0, 0.0], np.float32)])
    np.testing.assert_allclose(float(model.losses[0]), -math.log(0.8) / 2, rtol=1e-6)


def test_layer_weight_is_a_variable_and_survives_save_and_load(tmp_path):
    model = tiny_model_with_layer(0.7, threshold=0.1)
    layer = model.layers[-1]
    layer.loss_weight.assign(0.3)  # a ramp callback does this between steps
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[-1].get_config()["threshold"] == 0.1
    x = np.random.default_rng(10).normal(size=(5, 6)).astype(np.float32)
    logits = loaded(x)
    want = 0.3 * ns3l_loss(tf.nn.softmax(logits), logits, 0.1)
    np.testing.assert_allclose(float(loaded.losses[0]), float(want), rtol=1e-6)


def test_random_negatives_draw_exactly_p_classes_uniformly():
    generator = keras.random.SeedGenerator(0)
    first = random_negatives(20_000, 10, 3, generator).numpy()
    second = random_negatives(20_000, 10, 3, generator).numpy()
    np.testing.assert_array_equal(first.sum(axis=1), np.full(20_000, 3))
    np.testing.assert_allclose(first.mean(axis=0), np.full(10, 0.3), atol=0.015)
    assert (first != second).any(axis=1).mean() > 0.9  # fresh draws per call
    again = random_negatives(20_000, 10, 3, keras.random.SeedGenerator(0)).numpy()
    np.testing.assert_array_equal(first, again)  # reproducible from the seed


def test_random_mode_loss_uses_p_drawn_classes():
    probs = np.full((1000, 4), 0.25, np.float32)  # uniform p: any 2 negatives give s = 0.5
    loss = NS3LLoss(negatives="random", num_negatives=2, seed=3)
    np.testing.assert_allclose(float(loss(probs, np.log(probs))), -math.log(0.5), rtol=1e-5)


def test_float16_inputs_under_mixed_precision_compute_in_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_model_with_layer(1.0, threshold=0.2)
        x = np.random.default_rng(11).normal(scale=3.0, size=(16, 6)).astype(np.float32)
        logits = model(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert logits.dtype == tf.float16  # passed through untouched
    assert model.losses[0].dtype == tf.float32
    z32 = tf.cast(logits, tf.float32)
    want = ns3l_loss(tf.nn.softmax(z32), z32, 0.2)
    np.testing.assert_allclose(float(model.losses[0]), float(want), rtol=1e-5)
    big = tf.constant([[60000.0, -60000.0, 0.0]], tf.float16)  # overflows softmax in float16
    np.testing.assert_allclose(float(ns3l_loss([[0.5, 0.01, 0.49]], big, 0.04)), 0.0, atol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_inside_tf_function_and_xla(jit_compile):
    rng = np.random.default_rng(12)
    logits = tf.constant(rng.normal(scale=3.0, size=(32, 10)), tf.float32)
    targets = tf.constant(softmax(rng.normal(scale=3.0, size=(32, 10))), tf.float32)

    @tf.function(jit_compile=jit_compile)
    def value_and_grad(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = ns3l_loss(targets, z, 0.04)
        return loss, tape.gradient(loss, z)

    with tf.GradientTape() as tape:
        tape.watch(logits)
        eager = ns3l_loss(targets, logits, 0.04)
    loss, grad = value_and_grad(logits)
    np.testing.assert_allclose(float(loss), float(eager), rtol=1e-5)
    np.testing.assert_allclose(grad, tape.gradient(eager, logits), atol=1e-6)


def test_global_batch_reduction_under_mirrored_strategy():
    strategy = make_strategy("mirrored")
    rng = np.random.default_rng(13)
    logits = rng.normal(scale=3.0, size=(16, 10)).astype(np.float32)
    targets = softmax(rng.normal(scale=3.0, size=(16, 10))).astype(np.float32)
    mask = np.tile([1.0, 0.0, 1.0, 1.0], 4).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((targets, logits, mask)).batch(16)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    def per_replica(q, z, m):
        rows = ns3l_per_example(negatives_below(q, 0.04), z) * m
        custom_loop = tf.nn.compute_average_loss(rows, global_batch_size=16)
        return custom_loop, NS3LLoss()(q, z, sample_weight=m)

    custom_loop, keras_loss = strategy.run(per_replica, args=batch)
    want = numpy_ns3l(targets, logits, 0.04, mask)
    for value in (custom_loop, keras_loss):
        summed = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        np.testing.assert_allclose(float(summed), want, rtol=1e-5)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: ns3l_loss([[0.5, 0.5]], [[0.0, 0.0]], threshold=1.5), "threshold=1.5"),
        (lambda: NS3LLoss(negatives="nearest"), "negatives='nearest': expected one of"),
        (lambda: NS3L(negatives="random"), "needs num_negatives"),
        (lambda: random_negatives(4, 10, 10), "num_negatives=10: expected an integer in [1, 9]"),
    ],
)
def test_bad_arguments_name_the_value(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


# The two numerics near saturation (docs/ns3l.md)


def reference_float32(negatives, logits):
    """ns3l.py's rows in float32, as the released code computes them: softmax, 1 - Σ, clamp."""
    z = logits.astype(np.float32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True, dtype=np.float32)
    s = np.where(negatives, p, np.float32(0)).sum(axis=1, dtype=np.float32)
    return -np.log(np.clip(np.float32(1) - s, np.float32(1e-8), np.float32(1)))


def saturated_case(seed=1):
    """Logits of scale 10 and one non-negative class per row, the third smallest: 1 - s is then
    tiny for many rows, the regime where the two numerics part."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=10.0, size=(64, 10)).astype(np.float32)
    kept = np.argsort(logits, axis=1)[:, 2]
    negatives = np.ones((64, 10), bool)
    negatives[np.arange(64), kept] = False
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    exact = -np.log(e[np.arange(64), kept] / e.sum(axis=1))  # float64
    return negatives, logits, exact


def test_reference_numerics_are_the_released_float32_formula():
    negatives, logits, exact = saturated_case()
    got = ns3l_per_example(negatives, logits, numerics="reference").numpy()
    want = reference_float32(negatives, logits)
    # The same float32 formula: 1 - s agrees to a few ulps of 1 (summation order differs between
    # frameworks), so near the clamp the loss moves between the levels -log(k · 2^-24).
    np.testing.assert_allclose(np.exp(-got), np.exp(-want), rtol=0, atol=4 * 2.0**-24)
    # ... and its cancellation: many rows off the exact value by more than 0.5.
    assert (np.abs(got - np.minimum(exact, MAX_ROW_LOSS)) > 0.5).sum() >= 10


def test_stable_numerics_keep_the_exact_value_and_gradient_where_the_reference_clamps():
    negatives, logits, exact = saturated_case()
    stable = ns3l_per_example(negatives, logits, numerics="stable").numpy()
    reference = ns3l_per_example(negatives, logits, numerics="reference").numpy()
    below_cap = exact < MAX_ROW_LOSS
    np.testing.assert_allclose(stable[below_cap], exact[below_cap], rtol=1e-5)
    parted = below_cap & (reference >= MAX_ROW_LOSS - 1e-4)  # clamped though below the cap
    assert parted.sum() >= 3
    variable = tf.constant(logits)
    for numerics, zero_on_parted in (("reference", True), ("stable", False)):
        with tf.GradientTape() as tape:
            tape.watch(variable)
            total = tf.reduce_sum(ns3l_per_example(negatives, variable, numerics=numerics))
        gradient = np.abs(tape.gradient(total, variable).numpy()).sum(axis=1)
        assert (gradient[parted] == 0).all() == zero_on_parted
        assert (gradient[parted] > 0).all() != zero_on_parted


@pytest.mark.parametrize("numerics", ["reference", "stable"])
def test_the_keras_loss_and_layer_keep_their_numerics(numerics):
    loss = NS3LLoss(threshold=0.05, numerics=numerics)
    assert NS3LLoss.from_config(loss.get_config()).numerics == numerics
    layer = NS3L(numerics=numerics)
    assert NS3L.from_config(layer.get_config()).numerics == numerics
    negatives, logits, _ = saturated_case()
    targets = np.where(negatives, 0.0, 1.0).astype(np.float32)
    want = ns3l_per_example(negatives, logits, numerics=numerics).numpy().mean()
    np.testing.assert_allclose(float(loss(targets, logits)), want, rtol=1e-6)
    with pytest.raises(ValueError, match="numerics='exact': expected one of stable, reference"):
        NS3LLoss(numerics="exact")


LABELS_MESSAGE = (
    r"^y_true of dtype {} and shape {}: NS3L needs probabilities of the logits' shape {} to "
    r"choose the negative classes \(e\.g\. another view's softmax\), not class labels; with "
    r"labels in model\.fit, use the ns3l\.NS3L layer \(docs/ns3l\.md\)$"
)


@pytest.mark.parametrize(
    "y_true, dtype, shape",
    [
        (np.zeros((4, 1), "int64"), "int64", r"\(4, 1\)"),  # today: a silent 4.6052
        (np.zeros(4, "int32"), "int32", r"\(4,\)"),  # today: a SelectV2 broadcast error
        (np.zeros((4, 5), "float32"), "float32", r"\(4, 5\)"),  # the wrong number of classes
    ],
)
def test_the_keras_loss_refuses_class_labels_in_one_line(y_true, dtype, shape):
    logits = np.random.default_rng(0).normal(size=(4, 10)).astype("float32")
    message = LABELS_MESSAGE.format(dtype, shape, r"\(4, 10\)")
    with pytest.raises(ValueError, match=message):
        NS3LLoss()(y_true, logits)


def test_integer_labels_in_model_fit_are_refused_before_training():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    model.compile("adam", NS3LLoss())
    message = LABELS_MESSAGE.format("int64", r"\(None,\)", r"\(None, 10\)")
    with pytest.raises(ValueError, match=message):
        model.fit(np.zeros((8, 8), "float32"), np.zeros(8, "int64"), verbose=0)


def test_the_layer_refuses_labels_as_targets_and_random_negatives_need_none():
    logits = np.zeros((4, 10), "float32")
    with pytest.raises(
        ValueError,
        match=r"^targets of dtype int64 and shape \(4,\): NS3L needs "
        r".* not class labels; leave targets out for the layer's own softmax$",
    ):
        NS3L()(logits, targets=np.zeros(4, "int64"))
    NS3L()(logits, np.full((4, 10), 0.1, "float32"))  # probabilities, positionally: accepted
    # negatives="random" ignores y_true: any labels are accepted there.
    value = NS3LLoss(negatives="random", num_negatives=3, seed=1)(np.zeros(4, "int64"), logits)
    np.testing.assert_allclose(float(value), -np.log(1 - 3 / 10), rtol=1e-6)
