"""Index streams: a resumed run sees exactly the batches of an uninterrupted one."""

import numpy as np
import pytest
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.streams import index_batches


def take(n: int, batch_size: int, seed: int, steps: int, start_step: int = 0) -> np.ndarray:
    batches = index_batches(n, batch_size, seed, start_step).take(steps)
    return np.stack(list(batches.as_numpy_iterator()))  # [steps, batch_size]


def test_batches_are_epoch_permutations_cut_across_epochs():
    got = take(n=10, batch_size=4, seed=3, steps=10)  # 40 indices = 4 epochs
    assert got.dtype == np.int64 and got.shape == (10, 4)
    epochs = got.reshape(4, 10)
    for e, order in enumerate(epochs):
        np.testing.assert_array_equal(np.sort(order), np.arange(10))  # each index once per epoch
        twin = tf.random.experimental.stateless_shuffle(tf.range(10, dtype=tf.int64), [3, e])
        np.testing.assert_array_equal(order, twin.numpy())
    assert len({tuple(order) for order in epochs}) == 4  # a fresh order every epoch


# Step s starts at index 4s: 1, 2 in epoch 0 (batch 2 straddles epochs 0-1), 3 and 7 inside
# epochs 1 and 2, 5 exactly at the start of epoch 2, 12 inside epoch 4.
@pytest.mark.parametrize("start_step", [1, 2, 3, 5, 7, 12])
def test_resume_matches_uninterrupted_run(start_step):
    full = take(n=10, batch_size=4, seed=8, steps=20)
    resumed = take(n=10, batch_size=4, seed=8, steps=20 - start_step, start_step=start_step)
    np.testing.assert_array_equal(resumed, full[start_step:])


def test_resume_far_ahead_is_cheap_and_exact():
    n, batch_size, step = 1_000, 64, 10_000_000  # starts at index 640,000,000 = epoch 640,000
    resumed = take(n, batch_size, seed=1, steps=1, start_step=step)[0]
    order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), [1, 640_000])
    np.testing.assert_array_equal(resumed, order.numpy()[:batch_size])


def test_seeds_differ_and_calls_repeat():
    a, b, again = (take(n=50, batch_size=10, seed=s, steps=5) for s in (1, 2, 1))
    np.testing.assert_array_equal(a, again)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a.ravel()), np.sort(b.ravel()))  # same epoch, reordered


def test_bad_arguments_are_one_line():
    with pytest.raises(UsageError, match="n=10, batch_size=0, start_step=0: expected n > 0"):
        index_batches(10, 0, seed=1)


def test_both_stacks_training_streams_run_without_the_autotune_thread():
    """Its thread held a finished run's process for up to a minute (streams.py)."""
    import mixmatch.data
    import realistic_ssl.data

    oliver = realistic_ssl.data.prepare("digits", n_labeled=50, n_valid=200, seed=1)
    mix = mixmatch.data.prepare("digits", n_labeled=50, n_valid=1, seed=1)
    streams = [
        realistic_ssl.data.train_batches(oliver, 100, seed=1),
        realistic_ssl.data.train_batches(oliver, 100, seed=1, supervised=True),
        mixmatch.data.train_batches(mix, 64, seed=1),
    ]
    assert [stream.options().autotune.enabled for stream in streams] == [False] * 3
    first = next(iter(streams[0]))  # and the stream still yields its batches
    assert first[0].shape == (100, 16, 16, 3)
