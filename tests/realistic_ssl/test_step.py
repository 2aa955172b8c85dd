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


def make_trainer(method: str, protocol: str = "pt", **overrides):
    keras.utils.set_random_seed(0)
    model, teacher = RecordingModel(), RecordingModel()
    batch = tf.random.normal((8, 2, 2, 1))
    model(batch), teacher(batch)
    teacher.set_weights(model.get_weights())
    settings = presets.resolve(method, "cifar10", {}, protocol)
    hparams = {k: s.value for k, s in settings.items()} | overrides
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
    [("supervised", 1), ("pl", 2), ("pi", 2), ("ns3l", 2), ("pi+ns3l", 3), ("vat", 3),
     ("vat+em", 3), ("vat+ns3l", 4), ("vat+pl", 4), ("mt", 1), ("tf:pl", 1), ("tf:vat+pl", 3)],
)  # fmt: skip
def test_only_the_first_pass_updates_bn_statistics(method, passes):
    # [PT]'s pseudo-label makes a second pass; [TF]'s uses the first pass only (spec §4.6).
    protocol, _, method = method.rpartition(":")
    trainer, model, teacher = make_trainer(method, protocol or "pt")
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
    np.testing.assert_allclose(float(stats["xe"]), xent, rtol=1e-5)
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
    # [PT] ramps at the 1-based iteration: w(1) = exp(-5 (1 - 1/50,000)²) (spec §3.4).
    first = math.exp(-5 * (1 - 1 / 50_000) ** 2)
    np.testing.assert_allclose(values[1.0], unramped * (first if ramped else 1.0), rtol=1e-5)


@pytest.mark.parametrize(("counting", "at_zero"), [("zero_based", 0), ("one_based", 1)])
def test_the_ramp_counts_steps_as_the_protocol_does(counting, at_zero):
    trainer, _, _ = make_trainer("vat", ramp_counting=counting, warmup_steps=4)
    got = [float(trainer.ramp(tf.constant(step, tf.int64))) for step in range(5)]
    want = [math.exp(-5 * (1 - min((step + at_zero) / 4, 1)) ** 2) for step in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert want[0] == pytest.approx(math.exp(-5) if at_zero == 0 else math.exp(-5 * 0.75**2))


def test_consistency_weight_ramps_and_entropy_does_not():
    x, labels = a_batch()
    trainer, _, _ = make_trainer("vat+em")
    first = trainer.train_step(x, labels)
    trainer.optimizer.iterations.assign(50_000)  # past the warm-up: full weight
    later = trainer.train_step(x, labels)
    assert float(first["vat"]) < 0.05 * float(later["vat"])  # exp(-5) ≈ 0.0067 of the max
    assert 0.5 < float(first["em"]) / float(later["em"]) < 2  # β = 0.1 from step 0


@pytest.mark.parametrize("protocol", ["tf", "pt"])
def test_mean_teacher_averages_the_weights_as_its_protocol_does(protocol):
    trainer, model, teacher = make_trainer("mt", protocol)
    before = [v.numpy() for v in model.trainable_variables]  # the teacher starts equal to them
    for step in (1, 2):
        teacher_before = [v.numpy() for v in teacher.trainable_variables]
        pre_step = [v.numpy() for v in model.trainable_variables]
        trainer.train_step(*a_batch())
        for t_old, t, w_old, w in zip(teacher_before, teacher.trainable_variables, pre_step,
                                      model.trainable_variables, strict=True):  # fmt: skip
            if protocol == "tf":  # constant 0.95, the weights before the update (spec §3.2, §4.3)
                want = 0.95 * t_old + 0.05 * w_old
            else:  # min(1 - 1/(t + 1), 0.95): 0.5, then 2/3, after optimizer.step()
                decay = 1 - 1 / (step + 1)
                want = decay * t_old + (1 - decay) * w.numpy()
            np.testing.assert_allclose(t.numpy(), want, rtol=1e-6)
    assert not np.allclose(before[0], model.trainable_variables[0].numpy())


def test_pt_entropy_is_the_clean_pass_with_beta_006():
    trainer, model, _ = make_trainer("vat+em", "pt")
    assert (trainer.hp["em_pass"], trainer.hp["em_weight"]) == ("clean", 0.06)
    x, labels = a_batch()
    logits = model(x).numpy().astype(np.float64)  # the stand-in does not augment
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    entropy = -(p * np.log(p)).sum(axis=1)
    stats = trainer.train_step(x, labels)
    np.testing.assert_allclose(float(stats["em"]), 0.06 * entropy[4:].sum() / 8, rtol=1e-5)


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
