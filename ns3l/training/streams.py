"""Resumable index streams: the data position of a run is its step counter (docs/data.md).

Both stacks draw their labeled and unlabeled batches as positions into a split; mixmatch.md §1.5
accepts a per-epoch reshuffle in place of MixMatch's shuffle buffer, and realistic_ssl.md §1.5
describes [PT]'s concatenated fresh permutations, which this is."""

import tensorflow as tf

from ns3l.errors import UsageError


def index_batches(n: int, batch_size: int, seed: int, start_step: int = 0) -> tf.data.Dataset:
    """Infinite int64 [batch_size] batches of indices into a set of `n` examples.

    The stream is the concatenation of epochs 0, 1, ..., epoch e being
    `stateless_shuffle(range(n), seed=[seed, e])`, cut into batches across epoch boundaries.
    It starts at batch `start_step`, so a run resumed at step s gets exactly the batches an
    uninterrupted run gets from step s on. Resuming costs one permutation, whatever s is."""
    if n <= 0 or batch_size <= 0 or start_step < 0:
        raise UsageError(
            f"n={n}, batch_size={batch_size}, start_step={start_step}: expected n > 0, "
            "batch_size > 0 and start_step >= 0"
        )
    start_epoch, offset = divmod(start_step * batch_size, n)

    def epoch(e: tf.Tensor) -> tf.Tensor:  # [n], or its tail from `offset` in the first epoch
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e])
        )
        return order[tf.where(e == start_epoch, offset, 0) :]

    indices = tf.data.Dataset.counter(start_epoch, dtype=tf.int64).map(epoch).unbatch()
    # drop_remainder only fixes the static shape: the stream never ends.
    return indices.batch(batch_size, drop_remainder=True)


def without_autotune_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning model switched off.

    That model runs in a background thread which, in TensorFlow 2.21, a deleted iterator waits
    for until the thread's next wake-up: up to a minute once a run has gone on for a while, so a
    finished run's process lingered 0-40 s after its last results.json (measured on 1,000-step
    digits runs: 3 of 5 lingered 1.8-32 s; 0 of 3 without it, at the same speed). The training
    streams gather rows of an in-memory array and run three orders of magnitude faster than a step
    (docs/performance.md), so they need no tuning: `AUTOTUNE` parallelism and prefetching then
    take TensorFlow's static defaults."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
