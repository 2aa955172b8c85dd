import keras
import numpy as np
import pytest
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.distribute import distribute, global_batch_mean, is_chief, make_strategy

GLOBAL_BATCH = 8


def test_default_is_the_default_strategy():
    strategy = make_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


def test_mirrored_spans_the_two_logical_cpus():
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    assert sorted(strategy.extended.worker_devices) == [
        "/job:localhost/replica:0/task:0/device:CPU:0",
        "/job:localhost/replica:0/task:0/device:CPU:1",
    ]


def test_mirrored_on_an_explicit_device_list():
    strategy = make_strategy("mirrored", devices=["/cpu:1"])
    assert strategy.extended.worker_devices == ("/job:localhost/replica:0/task:0/device:CPU:1",)


def test_unknown_strategy_is_a_usage_error():
    with pytest.raises(
        UsageError, match=r"^--strategy='tpu': expected one of default, mirrored, multi_worker$"
    ):
        make_strategy("tpu")


def test_devices_without_mirrored_are_refused():
    with pytest.raises(UsageError, match="need --strategy=mirrored"):
        make_strategy("default", devices=["/cpu:0"])


def test_multi_worker_without_a_cluster_says_what_it_needs(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    with pytest.raises(
        UsageError, match=r"^--strategy=multi_worker needs the cluster: \$TF_CONFIG"
    ):
        make_strategy("multi_worker")


def test_a_batch_the_replicas_cannot_split_is_refused_in_one_line():
    strategy = make_strategy("mirrored")  # 2 replicas
    batches = tf.data.Dataset.from_tensors(tf.zeros([7, 3]))
    with pytest.raises(UsageError, match=r"^--batch=7 does not split over 2 replicas: expected a "
                       "multiple of 2"):  # fmt: skip
        distribute(strategy, batches, 7, "--batch")
    halves = [r.numpy().tolist() for r in next(iter(distribute(
        strategy, tf.data.Dataset.from_tensors(tf.range(4)), 4))).values]  # fmt: skip
    assert halves == [[0, 1], [2, 3]] and is_chief(strategy)


def test_global_batch_mean_with_and_without_weights():
    per_example = tf.constant([1.0, 2.0, 3.0, 6.0])
    assert global_batch_mean(per_example, 4).numpy() == 3.0
    assert global_batch_mean(per_example, 8).numpy() == 1.5
    # A 0/1 mask keeps dividing by the whole batch: (2 + 6) / 4.
    assert global_batch_mean(per_example, 4, tf.constant([0.0, 1.0, 0.0, 1.0])).numpy() == 2.0


def global_batch():
    x = tf.reshape(tf.range(GLOBAL_BATCH * 3, dtype=tf.float32), (GLOBAL_BATCH, 3)) / 24.0
    y = tf.cos(tf.reshape(tf.range(GLOBAL_BATCH * 2, dtype=tf.float32), (GLOBAL_BATCH, 2)))
    return x, y


def train_one_step(strategy, reduce):
    """Weights of a tiny model before and after one SGD step on the global batch, whose rows are
    split evenly over the replicas."""
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(4, "tanh", kernel_initializer=keras.initializers.HeNormal(1)),
                keras.layers.Dense(2, kernel_initializer=keras.initializers.HeNormal(2)),
            ]
        )
        # SGD: Adam is nearly invariant to the gradient's scale and would hide a wrong reduction.
        optimizer = keras.optimizers.SGD(learning_rate=0.5)
    before = [w.numpy() for w in model.weights]
    x, y = global_batch()
    rows = GLOBAL_BATCH // strategy.num_replicas_in_sync

    def replica_rows(context):
        start = context.replica_id_in_sync_group * rows
        return x[start : start + rows], y[start : start + rows]

    def step(x_replica, y_replica):
        with tf.GradientTape() as tape:
            per_example = tf.reduce_sum((model(x_replica, training=True) - y_replica) ** 2, -1)
            loss = reduce(per_example)
        variables = model.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)

    batch = strategy.experimental_distribute_values_from_function(replica_rows)
    tf.function(lambda batch: strategy.run(step, args=batch))(batch)
    assert optimizer.iterations.numpy() == 1
    return before, [w.numpy() for w in model.weights]


def over_global_batch(per_example):
    return global_batch_mean(per_example, GLOBAL_BATCH)


def test_mirrored_step_with_global_reduction_matches_one_device():
    before, single = train_one_step(tf.distribute.get_strategy(), over_global_batch)
    _, mirrored = train_one_step(make_strategy("mirrored"), over_global_batch)
    for initial, want, got in zip(before, single, mirrored, strict=True):
        assert np.abs(want - initial).min() > 1e-4  # the step moved every weight
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_mean_per_replica_scales_the_update_by_the_replica_count():
    before, single = train_one_step(tf.distribute.get_strategy(), over_global_batch)
    _, wrong = train_one_step(make_strategy("mirrored"), tf.reduce_mean)
    # Each replica's mean is 2x its share of the global mean, and the gradients are summed.
    for initial, right, got in zip(before, single, wrong, strict=True):
        np.testing.assert_allclose(got - initial, 2 * (right - initial), rtol=1e-5, atol=1e-6)
        assert np.abs(got - right).max() > 1e-3
