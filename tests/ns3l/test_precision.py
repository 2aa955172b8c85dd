"""`--mixed_precision`: the policy a run picks, and float16 loss scaling that skips overflows."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ns3l.training import precision


def test_the_policy_follows_the_flag_and_the_devices():
    assert precision.policy_name(False) == "float32"
    # No GPU here: bfloat16, which needs no loss scaling.
    assert precision.policy_name(True) == "mixed_bfloat16"


def test_the_policy_scope_is_undone_on_exit_and_on_error():
    with precision.policy_scope("mixed_bfloat16"):
        layer = keras.layers.Dense(2)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    with pytest.raises(RuntimeError), precision.policy_scope("mixed_float16"):
        raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize(("policy", "scaling"), [("float32", False), ("mixed_bfloat16", False),
                                                 ("mixed_float16", True)])  # fmt: skip
def test_only_float16_scales_the_loss(policy, scaling):
    with precision.policy_scope(policy):
        optimizer = precision.with_loss_scaling(keras.optimizers.Adam(0.1))
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer) == scaling
    loss = tf.constant(3.0)
    scale = 2.0**15 if scaling else 1.0  # Keras' initial scale
    assert float(precision.scaled(optimizer, loss)) == 3.0 * scale


def test_float16_step_unscales_the_gradient_and_skips_an_overflow():
    with precision.policy_scope("mixed_float16"):
        optimizer = precision.with_loss_scaling(keras.optimizers.SGD(0.5))
    weight = keras.Variable([1.0, -2.0])
    optimizer.build([weight])

    @tf.function
    def step(factor):
        with tf.GradientTape() as tape:
            # the forward in float16, as a mixed layer computes; the loss in float32
            loss = tf.cast(tf.reduce_sum(tf.cast(weight, tf.float16) * factor), tf.float32)
            scaled = precision.scaled(optimizer, loss)
        optimizer.apply(tape.gradient(scaled, [weight]), [weight])

    step(tf.constant(1.5, tf.float16))  # gradient 1.5 per element: 1.5 · 2^15 fits float16
    np.testing.assert_allclose(weight.numpy(), [1.0 - 0.5 * 1.5, -2.0 - 0.5 * 1.5])
    assert int(optimizer.iterations) == 1 and float(optimizer.dynamic_scale) == 2.0**15
    step(tf.constant(2.0, tf.float16))  # 2 · 2^15 overflows float16's 65,504: skipped
    np.testing.assert_allclose(weight.numpy(), [0.25, -2.75])
    assert int(optimizer.iterations) == 1 and float(optimizer.dynamic_scale) == 2.0**14
    step(tf.constant(2.0, tf.float16))  # 2 · 2^14 fits: applied, unscaled
    np.testing.assert_allclose(weight.numpy(), [-0.75, -3.75])
    assert int(optimizer.iterations) == 2
