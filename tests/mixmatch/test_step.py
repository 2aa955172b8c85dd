"""The MixMatch iteration: which passes run and update BN, and the three loss terms."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mixmatch import mixmatch as mm
from mixmatch import presets
from mixmatch.step import MixMatchTrainer
from ns3l.loss import ns3l_loss
from ns3l.training.augment import Augmentation


class RecordingModel(keras.Model):
    """A deterministic linear net recording the flags of every call."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(10)
        self.calls: list[tuple[bool, bool, int]] = []

    def call(self, x, training=False, update_bn_stats=True):
        self.calls.append((training, update_bn_stats, x.shape[0]))
        return self.dense(tf.reshape(x, (tf.shape(x)[0], -1)))


def make_trainer(method="mixmatch+ns3l", **overrides):
    keras.utils.set_random_seed(0)
    model, ema = RecordingModel(), RecordingModel()
    model(tf.zeros((1, 4, 4, 3))), ema(tf.zeros((1, 4, 4, 3)))
    ema.set_weights(model.get_weights())
    settings = presets.resolve(method, "cifar10", {})
    hparams = {k: s.value for k, s in settings.items()} | overrides
    none = Augmentation(flip=False, translate=0, noise_std=0.0)
    trainer = MixMatchTrainer(model, ema, hparams, none, seed=0)
    model.calls.clear()
    return trainer, model, ema


def a_batch(rows=12):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.uniform(-1, 1, (rows, 4, 4, 3)), tf.float32)
    u = tf.constant(rng.uniform(-1, 1, (rows, 4, 4, 3)), tf.float32)
    return x, tf.constant(rng.integers(0, 10, rows), tf.int64), u


def test_two_guess_passes_then_three_interleaved_of_which_only_the_first_updates_bn():
    trainer, model, _ = make_trainer()
    trainer.train_step(*a_batch())
    assert model.calls == [
        (True, False, 12), (True, False, 12),  # label guess on the two views
        (True, True, 12), (True, False, 12), (True, False, 12),  # interleaved passes
    ]  # fmt: skip


def test_losses_and_ns3l_on_the_mixed_targets():
    trainer, model, _ = make_trainer(ns3l_weight=2.0, ns3l_threshold=0.05)
    trainer.optimizer.iterations.assign(8192)  # half the λ_U warm-up: λ_U = 75 / 2
    x, labels, u = a_batch()
    trainer.mixup_rng.reset_from_seed(5)
    stats = trainer.train_step(x, labels, u)
    # Replay the same draws: guess, mix, then the losses on the pre-update weights.
    trainer2, model2, _ = make_trainer(ns3l_weight=2.0, ns3l_threshold=0.05)
    trainer2.mixup_rng.reset_from_seed(5)
    q = mm.guess_labels(model2, u, u)
    pool = tf.concat([x, u, u], 0)
    targets = tf.concat([tf.one_hot(labels, 10), q, q], 0)
    lam, permutation = mm.mixup_parameters(36, 0.75, trainer2.mixup_rng)
    mixed, targets_mixed = mm.mixup(pool, targets, lam, permutation)
    logits = model2(mixed)  # the interleaving only changes BN batches; this model has none
    want_xe = mm.soft_cross_entropy(targets_mixed[:12], logits[:12])
    want_l2u = 37.5 * mm.mean_squared_error(targets_mixed[12:], logits[12:])
    # Mean over all 36 mixed rows, in the released code's float32 numerics.
    want_ns3l = 2.0 * ns3l_loss(targets_mixed, logits, 0.05, numerics="reference")
    np.testing.assert_allclose(float(stats["xe"]), float(want_xe), rtol=1e-5)
    np.testing.assert_allclose(float(stats["l2u"]), float(want_l2u), rtol=1e-5)
    np.testing.assert_allclose(float(stats["ns3l"]), float(want_ns3l), rtol=1e-5)
    assert float(want_ns3l) > 0
    np.testing.assert_allclose(
        float(stats["total"]), float(want_xe + want_l2u + want_ns3l), rtol=1e-5
    )


def test_plain_mixmatch_has_no_ns3l_term_and_no_l2u_at_step_zero():
    trainer, _, _ = make_trainer("mixmatch")
    stats = trainer.train_step(*a_batch())
    assert "ns3l" not in stats and float(stats["l2u"]) == 0.0  # λ_U(0) = 0


@pytest.mark.parametrize("order", ["pre_step", "post_step"])
def test_the_ema_averages_the_weights_the_step_started_from_or_ended_with(order):
    trainer, model, ema = make_trainer("mixmatch", ema_order=order)
    ema.dense.kernel.assign(ema.dense.kernel * 0.5)  # unlike the raw weights, so both count
    before, ema_before = model.dense.kernel.numpy().copy(), ema.dense.kernel.numpy().copy()
    trainer.train_step(*a_batch())
    after = model.dense.kernel.numpy()
    assert not np.allclose(after, before)
    # The original (pre_step): the EMA op reads the weights before Adam's update (spec §3.4).
    averaged = before if order == "pre_step" else after
    np.testing.assert_allclose(
        ema.dense.kernel.numpy(), 0.999 * ema_before + 0.001 * averaged, rtol=1e-6, atol=1e-8
    )
