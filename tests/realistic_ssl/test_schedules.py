"""The consistency ramp and the staircase learning rate against hand-computed values."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from realistic_ssl.schedules import learning_rate, sigmoid_rampup, step_decay


def test_sigmoid_rampup_matches_hand_values():
    got = sigmoid_rampup(np.array([12_500, 25_000, 37_500, 50_000]), length=50_000)
    np.testing.assert_allclose(got, [0.06005, 0.28650, 0.73162, 1.0], atol=1e-5)


def test_sigmoid_rampup_starts_at_exp_minus_5_and_stays_at_1():
    got = sigmoid_rampup(np.array([0, 1, 49_999, 50_001, 200_000]), length=50_000)
    want = [math.exp(-5.0), math.exp(-5.0 * (1 - 1 / 50_000) ** 2), 1.0, 1.0, 1.0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.dtype == tf.float32


def test_sigmoid_rampup_takes_the_optimizer_step_inside_tf_function():
    step = tf.Variable(25_000, dtype=tf.int64)  # like optimizer.iterations
    ramp = tf.function(lambda: sigmoid_rampup(step, 50_000))
    np.testing.assert_allclose(float(ramp()), math.exp(-5.0 * 0.25), rtol=1e-6)
    step.assign(200_000)
    assert float(ramp()) == 1.0


def test_step_decay_drops_by_five_at_each_boundary():
    schedule = step_decay(3e-4, decay_steps=130_000)
    steps = [0, 129_999, 130_000, 200_000, 259_999, 260_000]
    got = [float(schedule(step)) for step in steps]
    want = [3e-4, 3e-4, 6e-5, 6e-5, 6e-5, 1.2e-5]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_step_decay_survives_serialisation_and_drives_adam():
    schedule = step_decay(3e-3, decay_steps=400_000)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    np.testing.assert_allclose(float(restored(400_000)), 6e-4, rtol=1e-6)
    optimizer = keras.optimizers.Adam(learning_rate=restored, epsilon=1e-8)
    optimizer.iterations.assign(399_999)
    np.testing.assert_allclose(float(optimizer.learning_rate), 3e-3, rtol=1e-6)
    optimizer.iterations.assign(400_000)
    np.testing.assert_allclose(float(optimizer.learning_rate), 6e-4, rtol=1e-6)


def test_pt_decays_once_after_iteration_t_and_agrees_with_tf_until_2t():
    once, staircase = learning_rate(3e-4, 130_000, decay="once"), step_decay(3e-4, 130_000)
    steps = [0, 129_999, 130_000, 259_999, 260_000, 400_000]  # 0-based, before the update
    got = [float(once(step)) for step in steps]
    # [PT]: iterations 1..130,000 at lr, `lr *= 0.2` once after iteration 130,000.
    np.testing.assert_allclose(got, [3e-4, 3e-4, 6e-5, 6e-5, 6e-5, 6e-5], rtol=1e-6)
    for step in steps[:4]:
        assert float(once(step)) == pytest.approx(float(staircase(step)), rel=1e-6)
    assert float(staircase(260_000)) == pytest.approx(1.2e-5)
