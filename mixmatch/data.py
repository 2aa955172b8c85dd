"""The MixMatch stack's inputs: the data set in the original class order, its split, and batches.

Spec: mixmatch.md §1. Images stay uint8 in memory (STL-10's 104,000 images are 2.9 GB so, 11.5 GB
as float32) and are scaled to [-1, 1] in the input pipeline (§1.2); the train step augments them
on the device (§1.6), so each labeled image gets one view and each unlabeled image two."""

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.augment import Augmentation
from ns3l.training.datasets import load_dataset, svhn_digit_to_mixmatch
from ns3l.training.seeds import stream_key
from ns3l.training.splits import Split, mixmatch_split
from ns3l.training.streams import index_batches, without_autotune_thread

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
    stl10_folds: str | None = None,
    labeled_in_unlabeled: bool = False,
) -> PreparedData:
    """Loads `dataset` and splits it with MixMatch's rule (spec §1.3-1.4).

    SVHN classes are remapped to the original code's order (digits 1..9 -> 0..8, 0 -> 9), so a
    seed's class-proportional split has the spec's counts. STL-10 (spec §1.3 step 4): the labeled
    set is line `seed` of the official `stl10_folds` file, mapped to TFDS's record order by
    matching images (`stl10_fold`); without the file, it is drawn from the 5,000 train images
    with equal class proportions (100 per class at 1,000). The unlabeled pool is the rest of
    train plus the 100,000 `unlabelled` images; with `labeled_in_unlabeled` (FixMatch,
    fixmatch.md §2.1) it is every train image, the labeled ones too."""
    raw = load_dataset(dataset, data_dir=data_dir, download=download)
    train_labels, test_labels = raw.train_labels, raw.test_labels
    if dataset == "svhn":
        train_labels, test_labels = map(svhn_digit_to_mixmatch, (train_labels, test_labels))
    images, fixed_labeled, rule = raw.train_images, None, None
    if raw.extra_images is not None:
        if stl10_folds:
            fixed_labeled = stl10_fold(stl10_folds, seed, raw.train_images)
            rule = (f"stl10: official fold line {seed} of {stl10_folds}, mapped to TFDS's "
                    "train order by image")  # fmt: skip
        else:
            fixed_labeled = mixmatch_split(
                train_labels, raw.num_classes, n_labeled, seed, n_valid=0, equal_proportions=True
            ).labeled
            rule = (f"stl10: no official fold (--stl10_folds): create_split seed {seed} over "
                    "the 5,000 train images, equal proportions")  # fmt: skip
        images = np.concatenate([raw.train_images, raw.extra_images])
        train_labels = np.concatenate([train_labels, np.zeros(len(raw.extra_images), np.int64)])
    split = mixmatch_split(
        train_labels, raw.num_classes, n_labeled, seed, n_valid=n_valid,
        equal_proportions=fixed_labeled is not None, fixed_labeled=fixed_labeled,
        labeled_in_unlabeled=labeled_in_unlabeled,
    )  # fmt: skip
    if rule:
        pool = ", unlabeled = every train image" if labeled_in_unlabeled else ""
        split = dataclasses.replace(split, rule=rule + pool)
    return PreparedData(images, train_labels, raw.test_images, test_labels, split, raw.num_classes)


def stl10_fold(path: str | Path, seed: int, train_images: np.ndarray) -> np.ndarray:
    """Positions in `train_images` (TFDS's stl10 train split, in TFDS's order) of the images on
    line `seed` (0-based, so seeds 1-5 are lines 2-6) of the official `fold_indices.txt`.

    The fold indexes the binary release's `train_X.bin`, which must sit beside the file (both
    come in stl10_binary.tar.gz); its images are matched to TFDS's byte for byte, since TFDS
    shuffles records and keeps no ids (spec mixmatch.md §1.1, §1.3 step 4)."""
    path = Path(path)
    binary = path.parent / "train_X.bin"
    for needed in (path, binary):
        if not needed.is_file():
            raise UsageError(
                f"--stl10_folds={path}: {needed} is missing; expected fold_indices.txt and "
                "train_X.bin of stl10_binary.tar.gz in one directory"
            )
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not 0 <= seed < len(lines):
        raise UsageError(f"--seed={seed}: {path} has fold lines 0..{len(lines) - 1}")
    fold = np.array(lines[seed], np.int64)
    # The binary layout: per image 3 x 96 x 96, column-major (spec §1.1).
    original = np.frombuffer(binary.read_bytes(), np.uint8)
    original = original.reshape(-1, *train_images.shape[-1:], *train_images.shape[1:3])
    original = original.transpose(0, 3, 2, 1)
    positions = {_digest(image): i for i, image in enumerate(train_images)}
    if len(original) != len(train_images) or len(positions) != len(train_images):
        raise UsageError(
            f"{binary}: {len(original)} images against TFDS's {len(train_images)} train images "
            f"({len(positions)} distinct): expected the same 5,000"
        )
    if fold.min() < 0 or fold.max() >= len(original):
        raise UsageError(f"{path} line {seed}: positions outside 0..{len(original) - 1}")
    mapped = [positions.get(_digest(original[i])) for i in fold]
    if None in mapped:
        raise UsageError(f"{binary}: image {fold[mapped.index(None)]} is not in TFDS's train split")
    return np.array(mapped, np.int64)


def _digest(image: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(image).data).digest()


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
