"""One FixMatch iteration against a hand-written twin (spec fixmatch.md §4-§6): the single
training-mode pass over [x; u_w; u_s], L_s + L_u + wd·Σ½||W||², TF1 Nesterov on the cosine lr,
BN statistics over all rows, the EMA after the step; and NS3L's term on top."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fixmatch import choices, presets
from fixmatch import fixmatch as fm
from fixmatch.step import FixMatchTrainer
from mixmatch import mixmatch as mm
from mixmatch.wrn import ResNet

B, MU, CLASSES = 4, 2, 10


def models(synchronized_bn: bool = False):
    made = []
    for _ in range(3):  # the trainer's model, its EMA twin, and the reference copy
        model = ResNet(CLASSES, seed=1, filters=4, repeat=1, scales=2, bn_momentum=0.9,
                       synchronized_bn=synchronized_bn)  # fmt: skip
        model(tf.zeros((1, 16, 16, 3)))
        made.append(model)
    for model in made[1:]:
        model.set_weights(made[0].get_weights())
    return made


def batch(seed=0):
    rng = np.random.default_rng(seed)

    def images(n: int) -> tf.Tensor:
        return tf.constant(rng.uniform(-1, 1, (n, 16, 16, 3)).astype(np.float32))

    def labels(n: int) -> tf.Tensor:
        return tf.constant(rng.integers(0, CLASSES, n), tf.int32)

    return images(B), labels(B), images(B * MU), images(B * MU), labels(B * MU)


def hparams(method="fixmatch", **changes):
    return {k: s.value for k, s in presets.resolve(method, "digits", changes).items()}


def test_one_step_is_the_losses_gradient_through_tf1_nesterov():
    model, ema, reference = models()
    x, y, u_w, u_s, u_y = batch()
    # The twin: the same pass, losses and update, written out.
    with tf.GradientTape() as tape:
        logits = reference(tf.concat([x, u_w, u_s], 0), training=True)
        z_x, z_w, z_s = logits[:B], logits[B : B + B * MU], logits[B + B * MU :]
        q = tf.nn.softmax(z_w).numpy()
        # τ between the middle two confidences: half the rows pass the mask.
        middle = np.sort(q.max(1))[B * MU // 2 - 1 : B * MU // 2 + 1]
        tau = float(middle.mean())
        mask = (q.max(1) >= np.float32(tau)).astype(np.float32)
        l_s = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, z_x))
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(q.argmax(1), z_s)
        l_u = tf.reduce_sum(mask * ce) / (B * MU)
        kernels = [v for v in reference.trainable_variables if v.name == "kernel"]
        l2 = tf.add_n([tf.reduce_sum(k**2) / 2 for k in kernels])
        total = l_s + l_u + 5e-4 * l2
    grads = tape.gradient(total, reference.trainable_variables)
    before = [v.numpy() for v in reference.trainable_variables]
    trainer = FixMatchTrainer(model, ema, hparams(confidence=tau), total_iterations=10)
    stats = trainer.train_step(x, y, u_w, u_s, u_y)
    assert 0 < mask.sum() < B * MU  # both kinds of rows
    assert float(stats["total"]) == pytest.approx(float(total), rel=1e-5)
    assert float(stats["xeu"]) == pytest.approx(float(l_u), rel=1e-5)
    assert float(stats["raw/wd"]) == pytest.approx(float(l2), rel=1e-5)
    assert float(stats["count/mask"]) == pytest.approx(mask.mean())
    # First step: a = g, W ← W − lr(g + 0.9g) at lr(0) = 0.03.
    for w0, g, w1 in zip(before, grads, model.trainable_variables, strict=True):
        np.testing.assert_allclose(w1.numpy(), w0 - 0.03 * 1.9 * g.numpy(), rtol=1e-4, atol=1e-7)
    # BN moving statistics moved with the moments of all 2·μB + B rows (the reference pass too).
    for mine, theirs in zip(model.non_trainable_variables, reference.non_trainable_variables,
                            strict=True):  # fmt: skip
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    # The EMA averages the weights after the step: 0.999·W0 + 0.001·W1.
    for average, w0, w1 in zip(ema.trainable_variables, before, model.trainable_variables,
                               strict=True):  # fmt: skip
        np.testing.assert_allclose(average.numpy(), 0.999 * w0 + 0.001 * w1.numpy(), rtol=1e-5,
                                   atol=1e-7)  # fmt: skip


@pytest.mark.parametrize("selector", choices.SELECTORS)
@pytest.mark.parametrize("view", choices.VIEWS)
def test_ns3l_adds_its_term_from_the_same_pass(selector, view):
    model, ema, reference = models()
    hp = hparams("fixmatch+ns3l", ns3l_selector=selector, ns3l_view=view, ns3l_weight=2.0,
                 ns3l_threshold=0.12)  # fmt: skip
    trainer = FixMatchTrainer(model, ema, hp, total_iterations=10)
    x, y, u_w, u_s, u_y = batch(1)
    logits = reference(tf.concat([x, u_w, u_s], 0), training=True)
    z_w, z_s = logits[B : B + B * MU], logits[B + B * MU :]
    q = tf.nn.softmax(z_w)
    chooser = {"weak": q, "strong": tf.nn.softmax(z_s),
               "ema": tf.nn.softmax(reference(u_w, training=False))}[selector]  # fmt: skip
    negatives = fm.ns3l_negatives(chooser, 0.12)
    mask = tf.cast(tf.reduce_max(q, 1) >= 0.95, tf.float32)
    views = {"strong": [z_s], "weak": [z_w], "both": [z_s, z_w]}[view]
    want = fm.ns3l_term(negatives, views, 1.0 - mask, "batch")
    stats = trainer.train_step(x, y, u_w, u_s, u_y)
    assert float(stats["raw/ns3l"]) == pytest.approx(float(want), rel=1e-5, abs=1e-7)
    assert float(stats["ns3l"]) == pytest.approx(2.0 * float(want), rel=1e-5, abs=1e-7)
    counts = negatives.numpy().sum(1)
    assert float(stats["count/negatives_per_row"]) == pytest.approx(counts.mean())
    true_negative = negatives.numpy()[np.arange(B * MU), u_y.numpy()]
    assert float(stats["count/true_class_among_negatives"]) == pytest.approx(true_negative.mean())


def test_the_trainer_keeps_keras_sgd_out():
    model, ema, _ = models()
    trainer = FixMatchTrainer(model, ema, hparams(), total_iterations=10)
    assert isinstance(trainer.optimizer, fm.NesterovSGD)
    assert not isinstance(trainer.optimizer, keras.optimizers.SGD)
    assert trainer.kernels == mm.kernel_variables(model) and len(trainer.kernels) > 3


def one_step_deltas(strategy, synchronized_bn: bool):
    with strategy.scope():
        made = models(synchronized_bn)[:2]  # the trainer's model and its EMA twin
        before = [v.numpy() for v in made[0].trainable_variables]
        # τ in the widest gap of batch(2)'s confidences (0.1796 | 0.1847): 2 of 8 rows pass.
        trainer = FixMatchTrainer(*made, hparams(confidence=0.182), total_iterations=10)
    inputs = tf.data.Dataset.from_tensors(batch(2))
    step = tf.function(lambda b: strategy.run(trainer.train_step, b))
    stats = step(next(iter(strategy.experimental_distribute_dataset(inputs))))
    stats = {k: float(strategy.reduce("SUM", v, None)) for k, v in stats.items()}
    deltas = [v.numpy() - w for v, w in zip(made[0].trainable_variables, before, strict=True)]
    moving = [v.numpy() for v in made[0].non_trainable_variables]
    return stats, deltas, moving


def relative_distance(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """‖got − want‖ / ‖want‖ over all arrays together."""
    squared = sum(float(np.sum((a - b) ** 2)) for a, b in zip(got, want, strict=True))
    return (squared / sum(float(np.sum(b**2)) for b in want)) ** 0.5


def test_two_replicas_with_synchronized_bn_take_the_single_device_step():
    from ns3l.training.distribute import make_strategy

    single = one_step_deltas(tf.distribute.get_strategy(), synchronized_bn=False)
    synced = one_step_deltas(make_strategy("mirrored"), synchronized_bn=True)
    per_replica = one_step_deltas(make_strategy("mirrored"), synchronized_bn=False)
    assert single[0]["count/mask"] == 0.25  # both kinds of unlabeled rows
    for name, value in single[0].items():  # each replica's share, summed
        assert synced[0][name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    # The update (lr·1.9·g) and the BN moving statistics, to float32 summation order: 1e-6
    # measured; per-replica BN normalises each half by its own moments, 2 % away.
    assert relative_distance(synced[1], single[1]) < 2e-5
    assert relative_distance(synced[2], single[2]) < 2e-6
    assert relative_distance(per_replica[1], single[1]) > 1e-3


def test_probes_are_scored_by_the_ema_weights_with_the_raw_models_bn_statistics():
    from fixmatch.loop import probe_scorer

    model, ema, reference = models()
    trainer = FixMatchTrainer(model, ema, hparams(), total_iterations=10)
    trainer.train_step(*batch(3))
    probes = batch(4)[0]
    stale = tf.nn.softmax(ema(probes, training=False)).numpy()  # the EMA model's own BN: unused
    got = probe_scorer(trainer)(probes).numpy()
    # spec §3.3, §6: the averaged weights, the raw model's moving statistics, inference mode.
    reference.set_weights(model.get_weights())
    for mine, average in zip(reference.trainable_variables, ema.trainable_variables, strict=True):
        mine.assign(average)
    want = tf.nn.softmax(reference(probes, training=False)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    raw = tf.nn.softmax(model(probes, training=False)).numpy()
    # Measured 0.04 and 0.005: neither the EMA model's own statistics nor the raw weights.
    assert np.abs(got - stale).max() > 1e-2 and np.abs(got - raw).max() > 1e-3
