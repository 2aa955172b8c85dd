"""The SSL penalties of realistic_ssl.methods against numpy twins and hand-computed values."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from realistic_ssl.methods import mean_teacher, pi_model, pseudo_label, supervised, vat
from realistic_ssl.methods.distances import entropy, kl_divergence, mean_squared_softmax_error

SHAPE = (4, 3, 3, 2)  # a small [B, H, W, C] batch


class StandIn(keras.Model):
    """Linear logits = flatten(x + noise) · A with the WRN's call signature; records the flags."""

    def __init__(self, kernel: np.ndarray, noise: float = 0.0):
        super().__init__()
        self.dense = keras.layers.Dense(kernel.shape[1], use_bias=False)
        self.dense.build((None, kernel.shape[0]))
        self.dense.kernel.assign(kernel)
        self.noise, self.update_flags = noise, []

    def call(self, x, training=False, update_bn_stats=True):
        self.update_flags.append(update_bn_stats)
        if training and self.noise:  # stands in for the WRN's fresh augmentation
            x = x + tf.random.normal(tf.shape(x), stddev=self.noise)
        return self.dense(tf.reshape(x, (tf.shape(x)[0], -1)))


def stand_in(seed: int, num_classes: int = 5, noise: float = 0.0) -> StandIn:
    kernel = np.random.default_rng(seed).normal(size=(math.prod(SHAPE[1:]), num_classes))
    return StandIn(kernel.astype(np.float32), noise)


def softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_kl(p_logits, q_logits):
    p, q = softmax(p_logits), softmax(q_logits)
    return (p * (np.log(p) - np.log(q))).sum(axis=-1)


def numpy_normalize(v):
    flat = v.reshape(len(v), -1)
    return (flat / np.linalg.norm(flat, axis=1, keepdims=True)).reshape(v.shape)


def random_logits(seed, shape=(8, 10), scale=3.0):
    return np.random.default_rng(seed).normal(scale=scale, size=shape).astype(np.float32)


# Distances and the supervised cross-entropy


@pytest.mark.parametrize("num_classes", [10, 100])
def test_distances_match_numpy(num_classes):
    s, t = random_logits(0, (8, num_classes)), random_logits(1, (8, num_classes))
    mse = ((softmax(s) - softmax(t)) ** 2).mean(axis=-1)  # a mean over classes, not a sum
    np.testing.assert_allclose(mean_squared_softmax_error(s, t), mse, rtol=1e-5)
    np.testing.assert_allclose(kl_divergence(s, t), numpy_kl(s, t), rtol=1e-5)
    np.testing.assert_allclose(kl_divergence(t, s), numpy_kl(t, s), rtol=1e-5)
    p = softmax(s)
    np.testing.assert_allclose(entropy(s), -(p * np.log(p)).sum(axis=-1), rtol=1e-5)


def test_kl_direction_on_a_hand_case():
    p, q = np.log([[0.9, 0.1]]), np.log([[0.5, 0.5]])
    # KL(p‖q) = 0.9 ln 1.8 + 0.1 ln 0.2; KL(q‖p) = 0.5 ln(5/9) + 0.5 ln 5.
    np.testing.assert_allclose(kl_divergence(p, q), [0.3680642], rtol=1e-6)
    np.testing.assert_allclose(kl_divergence(q, p), [0.5108256], rtol=1e-6)


def test_entropy_of_uniform_is_log_k_and_outputs_are_float32():
    logits = tf.zeros((3, 10), tf.float16)
    np.testing.assert_allclose(entropy(logits), [math.log(10)] * 3, rtol=1e-6)
    for out in (entropy(logits), kl_divergence(logits, logits)):
        assert out.dtype == tf.float32
    assert mean_squared_softmax_error(logits, logits).dtype == tf.float32


def test_cross_entropy_matches_numpy_and_is_zero_for_unlabeled_rows():
    logits = random_logits(2, (4, 10))
    labels = np.array([3, 0, -1, 9])
    want = -np.log(softmax(logits)[np.arange(4), np.maximum(labels, 0)])
    want[2] = 0.0
    np.testing.assert_allclose(supervised.cross_entropy(labels, logits), want, rtol=1e-5)


# Π-model and Mean Teacher


def test_pi_model_is_the_softmax_mse_to_a_stopped_second_pass():
    model, x = stand_in(0), tf.random.normal(SHAPE, seed=1)
    logits = tf.constant(random_logits(3, (4, 5)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        penalty = pi_model.consistency(model, x, logits)
    second_pass = x.numpy().reshape(4, -1) @ model.dense.kernel.numpy()
    want = ((softmax(logits) - softmax(second_pass)) ** 2).mean(axis=-1)
    np.testing.assert_allclose(penalty, want, rtol=1e-5)
    assert model.update_flags == [False]
    assert tape.gradient(penalty, model.trainable_variables) == [None]
    assert np.abs(tape.gradient(penalty, logits)).max() > 0


def test_mean_teacher_update_is_the_ema_of_trainable_variables():
    student, teacher = stand_in(0), stand_in(1)
    w_student0, w_teacher = student.dense.kernel.numpy(), teacher.dense.kernel.numpy()
    # Captured, not passed: a tf.function argument would turn the variables into tensors.
    update = tf.function(
        lambda: mean_teacher.update_teacher(
            teacher.trainable_variables, student.trainable_variables
        )
    )
    update()
    student.dense.kernel.assign(w_student0 + 1.0)
    update()
    want = 0.95 * (0.95 * w_teacher + 0.05 * w_student0) + 0.05 * (w_student0 + 1.0)
    np.testing.assert_allclose(teacher.dense.kernel.numpy(), want, rtol=1e-5, atol=1e-6)


def test_mean_teacher_consistency_uses_the_teacher_weights():
    teacher, x = stand_in(4), tf.random.normal(SHAPE, seed=2)
    logits = tf.constant(random_logits(5, (4, 5)))
    with tf.GradientTape() as tape:
        penalty = mean_teacher.consistency(teacher, x, logits)
    teacher_logits = x.numpy().reshape(4, -1) @ teacher.dense.kernel.numpy()
    want = ((softmax(logits) - softmax(teacher_logits)) ** 2).mean(axis=-1)
    np.testing.assert_allclose(penalty, want, rtol=1e-5)
    assert teacher.update_flags == [False]
    assert tape.gradient(penalty, teacher.trainable_variables) == [None]


# VAT


def test_normalize_gives_unit_norm_per_example_and_ignores_scale():
    v = tf.random.normal(SHAPE, seed=3) * tf.constant([1e-8, 1.0, 1e3, 1e20])[:, None, None, None]
    unit = vat.normalize(v)
    np.testing.assert_allclose(tf.norm(tf.reshape(unit, (4, -1)), axis=1), [1.0] * 4, atol=1e-5)
    np.testing.assert_allclose(vat.normalize(7.0 * v), unit, atol=1e-6)
    np.testing.assert_allclose(unit, numpy_normalize(v.numpy().astype(np.float64)), atol=1e-6)


@pytest.mark.parametrize("vat_epsilon", [6.0, 1.0])
def test_perturbation_has_norm_epsilon_per_example(vat_epsilon):
    model, x = stand_in(0, noise=0.15), tf.random.normal(SHAPE, seed=4)
    r_adv = vat.adversarial_perturbation(
        model, x, model(x, training=True), vat_epsilon, 1e-6, tf.random.Generator.from_seed(0)
    )
    norms = tf.norm(tf.reshape(r_adv, (4, -1)), axis=1)
    np.testing.assert_allclose(norms, [vat_epsilon] * 4, rtol=1e-5)


def test_power_iteration_follows_the_gradient_of_kl_clean_to_perturbed():
    # Linear model without noise: d/dz' of mean_i KL(p_i ‖ softmax(z'_i)) is (q - p) / B, so the
    # gradient with respect to d is (q - p) Aᵀ / B, with q = softmax((x + d) A).
    model, x = stand_in(0), tf.random.normal(SHAPE, seed=5)
    kernel, flat_x = model.dense.kernel.numpy().astype(np.float64), x.numpy().reshape(4, -1)
    logits = tf.constant(random_logits(6, (4, 5)))  # a clean pass unlike the perturbed one
    vat_xi, vat_epsilon = 0.5, 6.0  # a large ξ, so that d matters
    noise = tf.random.Generator.from_seed(9).normal(SHAPE).numpy().astype(np.float64)
    d = vat_xi * numpy_normalize(noise).reshape(4, -1)
    p, q = softmax(logits), softmax((flat_x + d) @ kernel)
    want = vat_epsilon * numpy_normalize((q - p) @ kernel.T)
    reverse_kl_gradient = (p * (np.log(p / q) + numpy_kl(logits, np.log(q))[:, None])) @ kernel.T
    assert np.abs(numpy_normalize(reverse_kl_gradient) * vat_epsilon - want).max() > 0.1
    got = vat.adversarial_perturbation(
        model, x, logits, vat_epsilon, vat_xi, tf.random.Generator.from_seed(9)
    )
    np.testing.assert_allclose(got.numpy().reshape(4, -1), want, atol=1e-4)


def test_adversarial_logits_carry_gradient_to_the_weights_but_not_through_r_adv():
    model, x = stand_in(0, noise=0.15), tf.random.normal(SHAPE, seed=6)
    generator = tf.random.Generator.from_seed(1)
    with tf.GradientTape(persistent=True) as tape:
        logits = model(x, training=True)
        r_adv = vat.adversarial_perturbation(model, x, logits, 6.0, 1e-6, generator)
        logits_adv = vat.adversarial_logits(model, x, logits, 6.0, 1e-6, generator)
    assert tape.gradient(r_adv, model.trainable_variables) == [None]
    assert np.abs(tape.gradient(logits_adv, model.trainable_variables)[0]).max() > 0
    assert model.update_flags == [True] + [False] * 3  # only the first pass updates BN


def test_vat_consistency_is_kl_adversarial_to_clean_with_clean_stopped():
    logits_adv, logits = tf.constant(np.log([[0.9, 0.1]])), tf.constant(np.log([[0.5, 0.5]]))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([logits_adv, logits])
        penalty = vat.consistency(logits_adv, logits)
    np.testing.assert_allclose(penalty, [0.3680642], rtol=1e-6)  # not KL(clean‖adv) = 0.5108
    assert tape.gradient(penalty, logits) is None
    assert np.abs(tape.gradient(penalty, logits_adv)).max() > 0


def test_vat_entropy_is_taken_on_its_argument():
    logits_adv, logits = random_logits(7, (4, 10)), np.zeros((4, 10), np.float32)
    p = softmax(logits_adv)
    np.testing.assert_allclose(vat.entropy(logits_adv), -(p * np.log(p)).sum(-1), rtol=1e-5)
    assert not np.allclose(vat.entropy(logits_adv), vat.entropy(logits))


# Pseudo-Label


def test_pseudo_label_target_and_penalty_on_hand_rows():
    confident = np.array([0.0, 8.0] + [0.0] * 8)  # p max = e^8 / (e^8 + 9) = 0.99699
    unsure = np.array([1.0, 0.5] + [0.0] * 8)
    logits = tf.constant(np.stack([confident, unsure]), tf.float32)
    # softmax(10 · onehot(1)): e^10 / (e^10 + 9) = 0.99959 on class 1, 4.54e-5 elsewhere.
    target = np.where(np.arange(10) == 1, math.exp(10.0), 1.0) / (math.exp(10.0) + 9.0)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        penalty = pseudo_label.consistency(logits)
    want_row0 = (target * (np.log(target) - np.log(softmax(confident)))).sum()
    np.testing.assert_allclose(penalty[0], want_row0, rtol=1e-4)  # 0.00179
    assert penalty[1] == 0.0
    gradient = tape.gradient(penalty, logits).numpy()
    np.testing.assert_allclose(gradient[0], softmax(confident) - target, atol=1e-6)  # p - target
    assert np.all(gradient[1] == 0.0)


def test_pseudo_label_threshold_applies_to_the_max_probability():
    logits = tf.constant([[0.0, 8.0] + [0.0] * 8])  # p max = 0.99699
    assert float(pseudo_label.consistency(logits, threshold=0.996)[0]) > 0.0
    assert float(pseudo_label.consistency(logits, threshold=0.997)[0]) == 0.0


# Under tf.function, and the registry


def test_every_penalty_runs_inside_tf_function():
    model, teacher = stand_in(0, noise=0.15), stand_in(1, noise=0.15)
    generator = tf.random.Generator.from_seed(2)

    @tf.function
    def penalties(x):
        logits = model(x, training=True)
        logits_adv = vat.adversarial_logits(model, x, logits, 6.0, 1e-6, generator)
        return [
            pi_model.consistency(model, x, logits),
            mean_teacher.consistency(teacher, x, logits),
            vat.consistency(logits_adv, logits),
            vat.entropy(logits_adv),
            pseudo_label.consistency(logits),
        ]

    first, second = penalties(tf.random.normal(SHAPE)), penalties(tf.random.normal(SHAPE))
    for penalty in first + second:
        assert penalty.shape == (4,) and np.all(np.isfinite(penalty))
    assert not np.allclose(first[2], second[2])  # fresh noise and a fresh VAT start each call


# The [PT] variants (spec §8)


@pytest.mark.parametrize("gradient_through", ["first", "second"])
def test_pi_model_sends_the_gradient_through_the_chosen_pass(gradient_through):
    model = stand_in(3, noise=0.3)
    x = tf.constant(np.random.default_rng(4).normal(size=SHAPE), tf.float32)
    first = tf.constant(random_logits(5, (4, 5)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(first)
        penalty = pi_model.consistency(model, x, first, gradient_through)
    to_first = tape.gradient(penalty, first)
    to_weights = tape.gradient(penalty, model.trainable_variables)[0]  # only via the second pass
    assert (to_first is not None) == (gradient_through == "first")  # [TF]
    assert (to_weights is not None) == (gradient_through == "second")  # [PT]
    assert model.update_flags == [False]


def test_pt_pseudo_label_is_ten_times_hard_ce_on_confident_rows_and_soft_ce_elsewhere():
    model = stand_in(6)
    x = tf.constant(np.random.default_rng(7).normal(size=SHAPE), tf.float32)
    first = np.array([[9.0, 0, 0, 0, 0], [0.5, 0, 0, 0, 0], [0, 0, 0, 12.0, 0], [1, 2, 3, 4, 5]])
    second = model(x).numpy()
    p = softmax(first)
    assert (p.max(axis=1) > 0.95).tolist() == [True, False, True, False]
    log_q = np.log(softmax(second))
    want = [
        -10 * log_q[0, 0],  # 10 · onehot(argmax), not softmaxed
        -(p[1] * log_q[1]).sum(),  # the first pass's probabilities as a soft target
        -10 * log_q[2, 3],
        -(p[3] * log_q[3]).sum(),
    ]
    got = pseudo_label.second_view_consistency(model, x, tf.constant(first, tf.float32), 0.95)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert model.update_flags == [True, False]  # the call above, then the no-update second pass


@pytest.mark.parametrize("schedule", ["constant", "warmup"])
def test_mean_teacher_decays(schedule):
    got = [float(mean_teacher.ema_decay(t, 0.95, schedule)) for t in (1, 2, 19, 20, 1000)]
    want = [0.95] * 5 if schedule == "constant" else [0.5, 2 / 3, 0.95, 0.95, 0.95]
    np.testing.assert_allclose(got, want, rtol=1e-6)
