"""The train step: which passes run and update BN, every reduction by the full batch, the ramps."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from realistic_ssl import presets
from realistic_ssl.step import RealisticSSLTrainer


class RecordingModel(keras.Model):
    """A deterministic linear net that records the flags of every call (eagerly)."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.dense = keras.layers.Dense(num_classes, kernel_initializer="glorot_normal")
        self.calls: list[tuple[bool, bool]] = []

    def call(self, x, training=False, update_bn_stats=True):
        self.calls.append((training, update_bn_stats))
        return self.dense(tf.reshape(x, (tf.shape(x)[0], -1)))


def make_trainer(method: str, **overrides):
    keras.utils.set_random_seed(0)
    model, teacher = RecordingModel(), RecordingModel()
    batch = tf.random.normal((8, 2, 2, 1))
    model(batch), teacher(batch)
    teacher.set_weights(model.get_weights())
    hparams = {k: s.value for k, s in presets.resolve(method, "cifar10", {}).items()} | overrides
    terms = tuple(method.split("+"))
    trainer = RealisticSSLTrainer(model, terms, hparams, global_batch=8, seed=0, teacher=teacher)
    model.calls.clear(), teacher.calls.clear()
    return trainer, model, teacher


def a_batch():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(8, 2, 2, 1)), tf.float32)
    labels = tf.constant([0, 1, 2, 3, -1, -1, -1, -1], tf.int64)
    return x, labels


@pytest.mark.parametrize(
    "method,passes",
    [("supervised", 1), ("pl", 1), ("pi", 2), ("ns3l", 2), ("pi+ns3l", 3), ("vat", 3),
     ("vat+em", 3), ("vat+ns3l", 4), ("vat+pl", 3), ("mt", 1)],
)  # fmt: skip
def test_only_the_first_pass_updates_bn_statistics(method, passes):
    trainer, model, teacher = make_trainer(method)
    trainer.train_step(*a_batch())
    assert model.calls[0] == (True, True)
    assert model.calls[1:] == [(True, False)] * (passes - 1)
    assert teacher.calls == ([(True, False)] if method == "mt" else [])


def test_every_term_is_divided_by_the_whole_batch():
    trainer, model, _ = make_trainer("ns3l", ns3l_threshold=0.2, ns3l_ramp=False)
    x, labels = a_batch()
    logits = model(x).numpy().astype(np.float64)
    stats = trainer.train_step(x, labels)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    xent = -np.log(p[np.arange(4), [0, 1, 2, 3]]).sum() / 8  # 4 labeled rows over B = 8
    np.testing.assert_allclose(float(stats["xent"]), xent, rtol=1e-5)
    # The stand-in has no augmentation, so the second view equals the first: ℓ = -log(1 - s).
    s = (p * (p < 0.2)).sum(axis=1)  # K = 4: some class is >= 0.25, never all negative
    ns3l = -np.log(1 - s[4:]).sum() / 8  # unlabeled rows only, over B = 8
    assert ns3l > 0.01
    np.testing.assert_allclose(float(stats["ns3l"]), ns3l, rtol=1e-5)


@pytest.mark.parametrize("ramped", [True, False])
def test_ns3l_weight_is_ramped_only_when_asked(ramped):
    x, labels = a_batch()
    values = {}
    for weight in (1.0, 2.0):
        trainer, _, _ = make_trainer("ns3l", ns3l_weight=weight, ns3l_ramp=ramped)
        values[weight] = float(trainer.train_step(x, labels)["ns3l"])
    np.testing.assert_allclose(values[2.0], 2 * values[1.0], rtol=1e-6)  # λ1 multiplies
    trainer, model, _ = make_trainer("ns3l", ns3l_weight=1.0, ns3l_ramp=False)
    unramped = float(trainer.train_step(x, labels)["ns3l"])
    want = unramped * (math.exp(-5) if ramped else 1.0)  # w(0) = exp(-5) (spec §3.4)
    np.testing.assert_allclose(values[1.0], want, rtol=1e-5)


def test_consistency_weight_ramps_and_entropy_does_not():
    x, labels = a_batch()
    trainer, _, _ = make_trainer("vat+em")
    first = trainer.train_step(x, labels)
    trainer.optimizer.iterations.assign(50_000)  # past the warm-up: full weight
    later = trainer.train_step(x, labels)
    assert float(first["vat"]) < 0.05 * float(later["vat"])  # exp(-5) ≈ 0.0067 of the max
    assert 0.5 < float(first["em"]) / float(later["em"]) < 2  # β = 0.1 from step 0


def test_mean_teacher_follows_the_student_by_ema():
    trainer, model, teacher = make_trainer("mt")
    before = [v.numpy() for v in model.trainable_variables]
    trainer.train_step(*a_batch())
    for t, s_old, s_new in zip(
        teacher.trainable_variables, before, model.trainable_variables, strict=True
    ):
        np.testing.assert_allclose(t.numpy(), 0.95 * s_old + 0.05 * s_new.numpy(), rtol=1e-6)


def test_ns3l_diagnostics_count_negatives():
    trainer, model, _ = make_trainer("ns3l", ns3l_threshold=0.3)
    x, labels = a_batch()
    p = tf.nn.softmax(model(x)).numpy()
    stats = trainer.train_step(x, labels)
    negatives = p < 0.3
    assert float(stats["count/negatives_u"]) == negatives[4:].sum()
    assert float(stats["count/rows_u"]) == 4
    assert float(stats["count/negatives_l"]) == negatives[:4].sum()
    assert float(stats["count/true_negatives_l"]) == negatives[np.arange(4), [0, 1, 2, 3]].sum()
