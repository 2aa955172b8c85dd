"""The math of one FixMatch iteration against numpy twins, hand values and TF1's own optimizer
(spec fixmatch.md §5-§6), and NS3L's options on the unlabeled rows (§11)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from fixmatch import choices
from fixmatch import fixmatch as fm
from tests.mixmatch.test_mixmatch import numpy_softmax

RNG = np.random.default_rng(0)


def numpy_ce(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    return -np.log(numpy_softmax(logits)[np.arange(len(labels)), labels])


def test_pseudo_labels_mask_at_or_above_the_threshold():
    # Row 0: softmax(log 95, log 5) = (0.95, 0.05): exactly τ, kept (>=). Row 1 just below.
    logits = np.log(np.array([[95.0, 5.0], [94.9, 5.1], [1.0, 99.0]], np.float32))
    q, labels, mask = fm.pseudo_labels(tf.constant(logits), 0.95)
    np.testing.assert_allclose(q.numpy(), numpy_softmax(logits.astype(np.float64)), rtol=1e-6)
    assert labels.numpy().tolist() == [0, 0, 1]
    assert q.numpy()[0, 0] == np.float32(0.95)  # exactly τ in float32: `>` would drop it
    assert mask.numpy().tolist() == [1.0, 0.0, 1.0]


def test_pseudo_labels_carry_no_gradient():
    logits = tf.Variable(RNG.normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        q, _, _ = fm.pseudo_labels(logits)
        total = tf.reduce_sum(q * q)
    assert tape.gradient(total, logits) is None


def test_the_unlabeled_loss_divides_by_all_rows():
    logits_s = RNG.normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    mask = np.array([1, 0, 0, 1, 0, 0], np.float32)
    got = float(fm.unlabeled_loss(tf.constant(labels), tf.constant(mask), tf.constant(logits_s)))
    want = (mask * numpy_ce(labels, logits_s.astype(np.float64))).sum() / 6  # not / 2
    assert got == pytest.approx(want, rel=1e-6)


def test_the_l2_penalty_is_half_the_squared_norm_times_wd():
    kernels = [keras.Variable(np.array([[1.0, 2.0]], np.float32)), keras.Variable(np.ones(3))]
    # 5e-4 · ½ · (1 + 4 + 3) = 2e-3.
    assert float(fm.l2_penalty(kernels, 5e-4)) == pytest.approx(2e-3)


def test_the_cosine_schedule_by_hand():
    schedule = fm.CosineDecay(0.03, 2**20)
    assert float(schedule(0)) == pytest.approx(0.03)
    assert float(schedule(2**20)) == pytest.approx(0.005853, abs=1e-6)
    assert float(schedule(2**21)) == pytest.approx(0.005853, abs=1e-6)  # clipped at r = 1
    assert float(schedule(2**19)) == pytest.approx(0.03 * math.cos(7 * math.pi / 32))


def test_nesterov_sgd_matches_tf1s_momentum_optimizer_under_a_changing_lr():
    """The original's optimizer itself is the reference; Keras' SGD(nesterov) drifts from it."""
    start = RNG.normal(size=(5,)).astype(np.float32)
    gradients = RNG.normal(size=(6, 5)).astype(np.float32)
    schedule = fm.CosineDecay(0.03, 8)  # a fast cosine: lr changes a lot between steps

    reference = tf.Variable(start)
    lr = tf.Variable(0.03)
    tf1 = tf.compat.v1.train.MomentumOptimizer(lambda: lr, 0.9, use_nesterov=True)
    ours = keras.Variable(start)
    optimizer = fm.NesterovSGD(schedule, momentum=0.9)
    keras_sgd = keras.Variable(start)
    keras_optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    for k, g in enumerate(gradients):
        lr.assign(float(schedule(k)))
        tf1.apply_gradients([(tf.constant(g), reference)])
        optimizer.apply([tf.constant(g)], [ours])
        keras_optimizer.apply([tf.constant(g)], [keras_sgd])
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-6, atol=1e-7)
    assert np.abs(keras_sgd.numpy() - reference.numpy()).max() > 1e-4


def test_nesterov_sgd_by_hand():
    variable = keras.Variable(np.array([1.0], np.float32))
    optimizer = fm.NesterovSGD(0.1, momentum=0.9)
    optimizer.apply([tf.constant([0.5])], [variable])
    # a = 0.5; W = 1 - (0.5·0.1 + 0.5·0.9·0.1) = 0.905.
    assert variable.numpy()[0] == pytest.approx(0.905)
    optimizer.apply([tf.constant([0.5])], [variable])
    # a = 0.9·0.5 + 0.5 = 0.95; W = 0.905 - (0.05 + 0.95·0.09) = 0.7695.
    assert variable.numpy()[0] == pytest.approx(0.7695)


def test_negatives_are_below_t_and_never_the_argmax():
    q = np.array([[0.96, 0.03, 0.01], [0.02, 0.02, 0.02], [0.5, 0.45, 0.05]], np.float32)
    # Row 1: uniform-ish (every class < T): the argmax (class 0, first of the ties) stays.
    got = fm.ns3l_negatives(tf.constant(q), 0.05).numpy()
    assert got.tolist() == [[False, True, True], [False, True, True], [False, False, False]]
    plain = fm.ns3l_negatives(tf.constant(q), 0.05, exclude_argmax=False).numpy()
    assert plain[1].tolist() == [True, True, True]


def numpy_f1(negatives: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """-log(1 - Σ_{k∈N} p_k), capped at -log(1e-8)."""
    p = numpy_softmax(logits.astype(np.float64))
    return np.minimum(-np.log(np.maximum(1 - (p * negatives).sum(axis=1), 1e-8)), -np.log(1e-8))


@pytest.mark.parametrize("rows", choices.ROWS)
@pytest.mark.parametrize("normalisation", choices.NORMALISATIONS)
@pytest.mark.parametrize("numerics", ["stable", "reference"])
def test_the_ns3l_term_over_its_rows_and_normaliser(rows, normalisation, numerics):
    logits_w = RNG.normal(size=(8, 10)).astype(np.float32) * 4
    logits_s = RNG.normal(size=(8, 10)).astype(np.float32) * 2
    q, _, mask = fm.pseudo_labels(tf.constant(logits_w), 0.95)
    negatives = fm.ns3l_negatives(q, 0.05)
    weights = fm.ns3l_rows(mask, rows)
    got = float(fm.ns3l_term(negatives, [tf.constant(logits_s)], weights, normalisation, numerics))
    m = mask.numpy()
    w = {"unconfident": 1 - m, "all": np.ones(8), "confident": m}[rows]
    per_row = numpy_f1(negatives.numpy(), logits_s)
    denominator = 8 if normalisation == "batch" else max(w.sum(), 1)
    assert got == pytest.approx((w * per_row).sum() / denominator, rel=1e-5, abs=1e-7)


def test_on_a_confident_row_the_ns3l_term_is_the_cross_entropy_on_the_pseudo_label():
    """τ = 0.95, T = 0.05: every non-argmax class is a negative, so F1 = CE(ŷ, z_s) (spec §11)."""
    logits_w = np.array([[6.0, 0.0, 0.0, 0.0]], np.float32)  # q_0 = 0.985
    logits_s = RNG.normal(size=(1, 4)).astype(np.float32)
    q, labels, mask = fm.pseudo_labels(tf.constant(logits_w), 0.95)
    assert float(mask[0]) == 1.0
    term = fm.ns3l_term(fm.ns3l_negatives(q, 0.05), [tf.constant(logits_s)], mask, "batch")
    assert float(term) == pytest.approx(float(fm.cross_entropy(labels, logits_s)[0]), rel=1e-6)


def test_the_term_sums_over_both_penalised_views_and_sends_no_gradient_to_the_selector():
    logits_w = tf.Variable(RNG.normal(size=(4, 5)).astype(np.float32) * 3)
    logits_s = tf.Variable(RNG.normal(size=(4, 5)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        q, _, mask = fm.pseudo_labels(logits_w)
        negatives = fm.ns3l_negatives(q, 0.3)
        weights = fm.ns3l_rows(mask, "all")
        strong = fm.ns3l_term(negatives, [logits_s], weights, "batch")
        weak = fm.ns3l_term(negatives, [logits_w], weights, "batch")
        both = fm.ns3l_term(negatives, [logits_s, logits_w], weights, "batch")
    assert float(both) == pytest.approx(float(strong) + float(weak), rel=1e-6)
    assert tape.gradient(strong, logits_w) is None  # the selector is detached
    assert tape.gradient(strong, logits_s) is not None


def test_the_light_choices_module_names_the_shared_losss_numerics():
    from ns3l.loss import NUMERICS

    assert choices.NUMERICS == NUMERICS
