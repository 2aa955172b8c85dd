"""The MixMatch stack's inputs: the data set in the original class order, its split, and batches.

Spec: mixmatch.md §1. Images stay uint8 in memory (STL-10's 104,000 images are 2.9 GB so, 11.5 GB
as float32) and are scaled to [-1, 1] in the input pipeline (§1.2); the train step augments them
on the device (§1.6), so each labeled image gets one view and each unlabeled image two."""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from ns3l.augment import Augmentation
from ns3l.datasets import load_dataset, svhn_digit_to_mixmatch
from ns3l.seeds import stream_key
from ns3l.splits import Split, mixmatch_split
from ns3l.streams import index_batches, without_autotune_thread

# spec §1.6: flip first, then reflect-pad and crop. Digits (16 px, not mirror-symmetric) and
# data sets outside the paper are our choices, listed in docs/mixmatch.md.
AUGMENTATIONS = {
    "cifar10": Augmentation(flip=True, translate=4, noise_std=0.0),
    "svhn": Augmentation(flip=False, translate=4, noise_std=0.0),
    "stl10": Augmentation(flip=True, translate=12, noise_std=0.0),
    "digits": Augmentation(flip=False, translate=2, noise_std=0.0),
}


def augmentation_for(dataset: str) -> Augmentation:
    return AUGMENTATIONS.get(dataset, AUGMENTATIONS["cifar10"])


@dataclass(frozen=True, eq=False)
class PreparedData:
    """uint8 images: `train_images` holds the labeled candidates then any unlabeled-only images
    (STL-10's `unlabelled` split); `split` indexes into it."""

    train_images: np.ndarray
    train_labels: np.ndarray  # [N] (0 for unlabeled-only images, never read)
    test_images: np.ndarray
    test_labels: np.ndarray
    split: Split
    num_classes: int

    @property
    def split_sizes(self) -> dict[str, int]:
        return self.split.sizes | {"test": len(self.test_labels)}


def prepare(
    dataset: str,
    n_labeled: int,
    n_valid: int,
    seed: int,
    data_dir: str | None = None,
    download: bool = False,
) -> PreparedData:
    """Loads `dataset` and splits it with MixMatch's rule (spec §1.3-1.4).

    SVHN classes are remapped to the original code's order (digits 1..9 -> 0..8, 0 -> 9), so a
    seed's class-proportional split has the spec's counts. STL-10: the labeled set is drawn from
    the 5,000 train images with equal class proportions (100 per class at 1,000); the unlabeled
    pool is the rest of train plus the 100,000 `unlabelled` images. This substitutes for the
    official fold file, which indexes the original binary order, not TFDS's (docs/data.md)."""
    raw = load_dataset(dataset, data_dir=data_dir, download=download)
    train_labels, test_labels = raw.train_labels, raw.test_labels
    if dataset == "svhn":
        train_labels, test_labels = map(svhn_digit_to_mixmatch, (train_labels, test_labels))
    images, fixed_labeled = raw.train_images, None
    if raw.extra_images is not None:
        fixed_labeled = mixmatch_split(
            train_labels, raw.num_classes, n_labeled, seed, n_valid=0, equal_proportions=True
        ).labeled
        images = np.concatenate([raw.train_images, raw.extra_images])
        train_labels = np.concatenate([train_labels, np.zeros(len(raw.extra_images), np.int64)])
    split = mixmatch_split(
        train_labels, raw.num_classes, n_labeled, seed, n_valid=n_valid,
        equal_proportions=fixed_labeled is not None, fixed_labeled=fixed_labeled,
    )  # fmt: skip
    return PreparedData(images, train_labels, raw.test_images, test_labels, split, raw.num_classes)


def to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 -> float32 in [-1, 1]: x·2/255 - 1 (spec §1.2)."""
    return tf.cast(images, tf.float32) * (2.0 / 255.0) - 1.0


def train_batches(
    data: PreparedData, batch: int, seed: int, start_step: int = 0
) -> tf.data.Dataset:
    """Infinite (x [batch], labels [batch], u [batch]) from step `start_step` on: labeled and
    unlabeled images in [-1, 1], not yet augmented. Two independent streams (spec §1.5)."""
    images = tf.Variable(data.train_images, trainable=False)  # uint8, captured by the map
    labels = tf.constant(data.train_labels)
    labeled, unlabeled = tf.constant(data.split.labeled), tf.constant(data.split.unlabeled)

    def rows(i_l: tf.Tensor, i_u: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        rows_l, rows_u = tf.gather(labeled, i_l), tf.gather(unlabeled, i_u)
        x, u = (to_unit_range(tf.gather(images, r)) for r in (rows_l, rows_u))
        return x, tf.gather(labels, rows_l), u

    streams = tf.data.Dataset.zip(
        index_batches(len(labeled), batch, stream_key(seed, "labeled_order"), start_step),
        index_batches(len(unlabeled), batch, stream_key(seed, "unlabeled_order"), start_step),
    )
    batches = streams.map(rows, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return without_autotune_thread(batches)
