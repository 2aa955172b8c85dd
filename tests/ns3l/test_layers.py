"""The shared BatchNorm's synchronized moments (`--sync_bn`) against a float64 numpy twin."""

import numpy as np
import tensorflow as tf

from ns3l.training.distribute import make_strategy
from ns3l.training.layers import BatchNorm


def numpy_input_gradient(x: np.ndarray, g: np.ndarray, epsilon: float) -> np.ndarray:
    """dL/dx of y = (x − μ)/s per channel (γ = 1, β = 0, s = √(σ² + ε), biased σ² over all
    axes but the last) for dL/dy = g: (g − mean g − (x − μ)·mean(g·(x − μ))/s²)/s."""
    axes = tuple(range(x.ndim - 1))
    centred = x - x.mean(axes)
    s = np.sqrt(centred.var(axes) + epsilon)
    return (g - g.mean(axes) - centred * (g * centred).mean(axes) / s**2) / s


def test_synchronized_moments_keep_the_gradient_of_a_channel_whose_mean_dwarfs_its_spread():
    # Mean 5, std 0.01 (|mean| = 500·std): E[x²] − E[x]² in float32 loses about 2 of the
    # variance's digits, and the gradient 0.3 % with them; two passes keep it to 1e-6.
    rng = np.random.default_rng(0)
    x = (5 + 0.01 * rng.standard_normal((8, 4, 4, 3))).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    strategy = make_strategy("mirrored")
    with strategy.scope():
        layer = BatchNorm(synchronized=True)
        layer.build((None, 4, 4, 3))

    def input_gradient(x: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, x, output_gradients=g)

    batches = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, g)))
    step = tf.function(lambda batch: strategy.run(input_gradient, batch))
    parts = strategy.experimental_local_results(step(next(iter(batches))))
    assert len(parts) == 2  # each replica holds half the rows; the moments span both
    got = np.concatenate([part.numpy() for part in parts])
    want = numpy_input_gradient(x.astype(np.float64), g.astype(np.float64), layer.epsilon)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
