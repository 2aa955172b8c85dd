"""How the loops call the compiled step: several steps per call, the call ranges, profiling."""

import numpy as np
import pytest
import tensorflow as tf

from ns3l.training.distribute import make_strategy
from ns3l.training.runs import (
    call_ranges,
    compiled_predict,
    compiled_step,
    compiled_steps,
    train_calls,
)
from ns3l.training.settings import RunConfig


@pytest.mark.parametrize(
    ("start", "end", "per_call", "every", "profile", "want"),
    [
        (0, 5, 1, (), 0, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]),
        (0, 10, 4, (), 0, [(1, 4), (5, 8), (9, 10)]),
        # every multiple of 3 and of 5 ends a call, so the loop sees it
        (0, 10, 4, (3, 5), 0, [(1, 3), (4, 5), (6, 6), (7, 9), (10, 10)]),
        (0, 10, 100, (100, 5), 0, [(1, 5), (6, 10)]),
        (4, 9, 3, (), 0, [(5, 7), (8, 9)]),  # a resumed run starts after its checkpoint
        (0, 10, 4, (), 6, [(1, 4), (5, 5), (6, 6), (7, 10)]),  # the profiled step alone
        (0, 10, 4, (), 1, [(1, 1), (2, 5), (6, 9), (10, 10)]),
        (0, 3, 4, (), 7, [(1, 3)]),  # a profile step past the end is never reached
        (6, 6, 4, (), 0, []),
    ],
)
def test_call_ranges(start, end, per_call, every, profile, want):
    assert list(call_ranges(start, end, per_call, every, profile)) == want


def test_call_ranges_with_an_offset_also_end_one_step_after_each_multiple():
    # MixMatch evaluates at 1, 1 + 4, 1 + 8: those steps and the multiples of 4 end calls.
    got = list(call_ranges(0, 10, 100, (4,), offset=1))
    assert got == [(1, 1), (2, 4), (5, 5), (6, 8), (9, 9), (10, 10)]


class Summer:
    """A train step with state: adds the batch's sum to a variable, returns it and the batch's
    first value (each replica its share)."""

    def __init__(self):
        self.total = tf.Variable(0.0, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def train_step(self, batch):
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        context = tf.distribute.get_replica_context()
        self.total.assign_add(context.all_reduce("sum", tf.reduce_sum(batch)))
        return {"total": self.total / replicas, "sum": tf.reduce_sum(batch)}


def batches(strategy):
    data = tf.data.Dataset.range(1, 100).map(lambda i: (tf.fill([4], tf.cast(i, tf.float32)),))
    return iter(strategy.experimental_distribute_dataset(data.batch(2)))


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_several_steps_per_call_equal_as_many_single_steps(strategy_name):
    strategy = make_strategy(strategy_name)
    with strategy.scope():
        one, many = Summer(), Summer()
    step = compiled_step(strategy, one.train_step)
    single = batches(strategy)
    for _ in range(3):
        single_stats = step(next(single))
    steps = compiled_steps(strategy, many.train_step)
    iterator = batches(strategy)
    stats = steps(iterator, 3)
    # batch k holds rows 2k-1 and 2k, four copies each: three batches sum to 4 · (1 + ... + 6)
    assert float(many.total.numpy()) == float(one.total.numpy()) == 4 * 21
    assert float(stats["sum"]) == float(single_stats["sum"]) == 4 * (5 + 6)  # the last step's
    stats = steps(iterator, 1)  # the iterator went on where the call left it
    assert float(stats["sum"]) == 4 * (7 + 8)
    assert steps(iterator, 2) and float(many.total.numpy()) == 4 * sum(range(1, 13))


def test_one_trace_for_any_count_and_any_evaluation_batch():
    summer = Summer()
    steps = compiled_steps(tf.distribute.get_strategy(), summer.train_step)
    iterator = batches(tf.distribute.get_strategy())
    for count in (1, 3, 2):
        steps(iterator, count)
    assert steps.function.experimental_get_tracing_count() == 1

    model = tf.keras.layers.Lambda(lambda x: tf.reduce_sum(x, axis=[1, 2]))
    predict = compiled_predict(model, (2, 2, 3))
    images = np.zeros((7, 2, 2, 3), np.float32)
    images[:, 0, 0, 2] = 1.0  # class 2 everywhere
    for rows in (7, 3, 1):
        np.testing.assert_array_equal(predict(images[:rows]).numpy(), [2] * rows)
    assert predict.experimental_get_tracing_count() == 1


def test_the_profiled_step_writes_a_trace(tmp_path):
    config = RunConfig(method="m", dataset="d", seed=1, logdir=str(tmp_path), settings={},
                       steps_per_call=3, profile_step=4)  # fmt: skip
    summer = Summer()
    steps = compiled_steps(tf.distribute.get_strategy(), summer.train_step)
    calls = list(train_calls(steps, batches(tf.distribute.get_strategy()), 0, 6, config, every=()))
    assert [step for step, _ in calls] == [3, 4, 6]
    assert float(calls[-1][1]["sum"]) == 4 * (11 + 12)
    traces = list(tmp_path.glob("plugins/profile/*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
