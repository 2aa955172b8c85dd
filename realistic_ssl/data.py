"""The Oliver stack's inputs: a preprocessed data set, its split, and the training batch stream.

Batches follow spec §1.5: 50 labeled rows then 50 unlabeled rows (labels -1) in one forward pass,
or 100 labeled rows for the fully supervised baseline. Positions come from `ns3l.training.streams`,
so a run resumed at step s reads exactly the batches of an uninterrupted run."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.datasets import load_dataset, resolve_data_dir
from ns3l.training.seeds import stream_key
from ns3l.training.splits import Split, oliver_pt_split, oliver_tf_split
from ns3l.training.streams import index_batches, without_autotune_thread
from realistic_ssl.preprocess import preprocess


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Preprocessed float32 images [N, H, W, C] (spec §1.4) with int64 labels, and the split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    split: Split
    num_classes: int

    @property
    def split_sizes(self) -> dict[str, int]:
        return self.split.sizes | {"test": len(self.test_labels)}


SPLIT_RULES = {"tf": oliver_tf_split, "pt": oliver_pt_split}  # spec §1.2-1.3, §8


def prepare(
    dataset: str,
    n_labeled: int,
    n_valid: int,
    seed: int,
    data_dir: str | None = None,
    download: bool = False,
    split_rule: str = "pt",
    unlabeled_includes_labeled: bool = False,
    cache_dir: str | Path | None = None,
) -> PreparedData:
    """Loads `dataset`, preprocesses it as spec §1.4 and splits it with [TF]'s or [PT]'s rule
    (`split_rule`, spec §1.2-1.3) at `seed`.

    The ZCA fit (CIFAR) is cached in `cache_dir`, by default `<TFDS data dir>/ns3l_cache`: next to
    the data, shared by every run and seed that reads the same images."""
    raw = load_dataset(dataset, data_dir=data_dir, download=download)
    split = SPLIT_RULES[split_rule](
        raw.train_labels, raw.num_classes, n_labeled, n_valid, seed,
        unlabeled_includes_labeled=unlabeled_includes_labeled,
    )  # fmt: skip
    cache_dir = cache_dir or Path(resolve_data_dir(data_dir)) / "ns3l_cache"
    train, test = preprocess(dataset, raw.train_images, raw.test_images, cache_dir=cache_dir)
    return PreparedData(train, raw.train_labels, test, raw.test_labels, split, raw.num_classes)


def train_batches(
    data: PreparedData,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    supervised: bool = False,
    replicas: int = 1,
) -> tf.data.Dataset:
    """Infinite (x [batch, H, W, C] float32, labels [batch] int64) batches from `start_step` on.

    Semi-supervised: batch/2 labeled rows then batch/2 unlabeled rows with label -1. With several
    replicas the rows are reordered so each replica's contiguous slice holds half of each, as a
    single device's batch does (tf.distribute splits the global batch along axis 0)."""
    if batch_size % (2 * replicas):
        raise UsageError(
            f"--batch_size={batch_size}: expected a multiple of 2 x {replicas} replicas, so every "
            "replica gets as many labeled as unlabeled rows"
        )
    images = tf.Variable(data.train_images, trainable=False)  # captured by the map below
    labels = tf.constant(data.train_labels)
    labeled = tf.constant(data.split.labeled)
    labeled_order = stream_key(seed, "labeled_order")
    if supervised:
        rows = index_batches(len(labeled), batch_size, labeled_order, start_step).map(
            lambda i: tf.gather(labeled, i)
        )
        batches = rows.map(lambda r: (tf.gather(images, r), tf.gather(labels, r)))
        return without_autotune_thread(batches.prefetch(tf.data.AUTOTUNE))
    unlabeled = tf.constant(data.split.unlabeled)
    half = batch_size // 2

    def batch(i_l: tf.Tensor, i_u: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        rows_l, rows_u = tf.gather(labeled, i_l), tf.gather(unlabeled, i_u)
        x = _per_replica_halves(tf.gather(images, rows_l), tf.gather(images, rows_u), replicas)
        y_u = tf.fill([half], tf.constant(-1, tf.int64))
        return x, _per_replica_halves(tf.gather(labels, rows_l), y_u, replicas)

    streams = tf.data.Dataset.zip(
        index_batches(len(labeled), half, labeled_order, start_step),
        index_batches(len(unlabeled), half, stream_key(seed, "unlabeled_order"), start_step),
    )
    batches = streams.map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return without_autotune_thread(batches)


def _per_replica_halves(first: tf.Tensor, second: tf.Tensor, replicas: int) -> tf.Tensor:
    """[first_0, second_0, first_1, second_1, ...] in `replicas` chunks; [first, second] for 1."""
    shape = tf.shape(first)
    chunks = [tf.reshape(t, tf.concat([[replicas, -1], shape[1:]], 0)) for t in (first, second)]
    return tf.reshape(tf.concat(chunks, axis=1), tf.concat([[-1], shape[1:]], 0))
