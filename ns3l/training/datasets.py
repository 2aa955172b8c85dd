"""Image classification data sets as uint8 arrays, from TFDS or, offline, scikit-learn's digits.

Spec: realistic_ssl.md §1.1, mixmatch.md §1.1; docs/data.md lists the names, splits and class
indexing, and how to prepare a data set on a machine without internet."""

import os
import re
import shutil
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn.datasets
import tensorflow as tf
import tensorflow_datasets as tfds

from ns3l.errors import UsageError, expected

# Our name -> (TFDS name, split of unlabeled-only images or None).
TFDS_SOURCES = {
    "cifar10": ("cifar10", None),
    "cifar100": ("cifar100", None),
    "svhn": ("svhn_cropped", None),  # train + test only: the "noextra" SVHN of both stacks
    "stl10": ("stl10", "unlabelled"),
}
DATASET_NAMES = (*TFDS_SOURCES, "digits")
# The split rules index these in the original files' order, which TFDS records only as an `id`
# (cifar10 and cifar100 from 3.0.2, svhn_cropped from 3.1.0); STL-10 has none (mixmatch/data.py).
FILE_ORDER_REQUIRED = ("cifar10", "cifar100", "svhn")
DIGITS_TRAIN_SIZE = 1_297  # the other 500 of the 1,797 digits are the test set
DIGITS_SPLIT_SEED = 0
_READ_BATCH = 4096  # batch_size=-1 (one batch of everything) crashes under tfds mock_data


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A train and a test set of uint8 images with int64 classes in [0, num_classes)."""

    name: str
    train_images: np.ndarray  # [N, H, W, C] uint8
    train_labels: np.ndarray  # [N] int64
    test_images: np.ndarray  # [N_test, H, W, C] uint8
    test_labels: np.ndarray  # [N_test] int64
    num_classes: int
    extra_images: np.ndarray | None = None  # [M, H, W, C] uint8 without labels (STL-10's 100k)


def load_dataset(name: str, data_dir: str | None = None, download: bool = False) -> ImageDataset:
    """`digits`, a built-in TFDS name (`TFDS_SOURCES`), or any TFDS image-classification data set.

    TFDS data is read from `data_dir` (default $TFDS_DATA_DIR, else ~/tensorflow_datasets) and
    downloaded only if `download`: TFDS retries for minutes offline, so missing data is a
    one-line UsageError within seconds that says how to prepare it. Splits `train` and `test`;
    the image and ClassLabel features are found in the builder's features."""
    if name == "digits":
        return load_digits()
    tfds_name, extra_split = TFDS_SOURCES.get(name, (name, None))
    builder = _builder(name, tfds_name, data_dir)
    if download:
        download_and_prepare(builder, name)
    if name in FILE_ORDER_REQUIRED:
        require_record_ids(name, builder)
    image_key, label_key = _feature_keys(builder, name)
    train_images, train_labels = _read_split(builder, "train", (image_key, label_key), name)
    test_images, test_labels = _read_split(builder, "test", (image_key, label_key), name)
    extra_images = None
    if extra_split:
        (extra_images,) = _read_split(builder, extra_split, (image_key,), name)
    return ImageDataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels.astype(np.int64),
        test_images=test_images,
        test_labels=test_labels.astype(np.int64),
        num_classes=builder.info.features[label_key].num_classes,
        extra_images=extra_images,
    )


def missing_data(name: str, data_dir: str | None = None) -> str | None:
    """None when `name` can be read here (digits, or TFDS data prepared in `data_dir`), else the
    one line that says how to prepare it: what a sweep's dry run warns about before any run."""
    if name == "digits":
        return None
    builder = _builder(name, TFDS_SOURCES.get(name, (name, None))[0], data_dir)
    return None if builder.is_prepared() else str(_not_prepared(name, builder))


def resolve_data_dir(data_dir: str | None = None) -> str:
    """The TFDS data directory a run reads: `data_dir`, else $TFDS_DATA_DIR, else
    ~/tensorflow_datasets: TFDS's own rule, made explicit so messages and caches can name it."""
    return os.path.expanduser(
        data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    )


def _builder(name: str, tfds_name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    """The TFDS builder in `data_dir`."""
    data_dir = resolve_data_dir(data_dir)
    try:
        return tfds.builder(tfds_name, data_dir=data_dir)
    except ValueError:  # an unknown or malformed name: TFDS's own message lists 1,000 data sets
        accepted = [*DATASET_NAMES, f"or a TFDS image-classification data set in {data_dir}"]
        raise expected("dataset", name, accepted) from None


def download_and_prepare(builder: tfds.core.DatasetBuilder, name: str) -> None:
    """`builder.download_and_prepare()`, failing in seconds, not minutes, when a host of its
    download URLs does not resolve (TFDS retries for about 200 s offline), and leaving no
    `downloads/*.tmp.*` files behind when it fails. One-line UsageErrors."""
    hosts = sorted({urllib.parse.urlsplit(url).hostname or "" for url in builder.url_infos or ()})
    for host in filter(None, hosts):
        try:
            socket.getaddrinfo(host, 443)
        except OSError as error:
            raise UsageError(
                f"--download: {host} (a download host of {builder.name}) does not resolve "
                f"({error.strerror or error}); prepare {name} on a machine with internet: "
                f"`tfds build {builder.name} --data_dir=...`, then copy it here (docs/data.md)"
            ) from None
    downloads = Path(builder.data_dir_root) / "downloads"
    try:
        builder.download_and_prepare()
    except Exception as error:  # a network or server failure, whatever TFDS raises for it
        for partial in downloads.glob("**/*.tmp.*"):
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise UsageError(
            f"--download of {builder.name} failed ({type(error).__name__}: {first}); partial "
            "files removed"
        ) from None


def require_record_ids(name: str, builder: tfds.core.DatasetBuilder) -> None:
    """A one-line UsageError if `builder`'s records carry no `id`: an older TFDS version, whose
    record order cannot be put back into the files' order the split rules assume."""
    if "id" in builder.info.features:
        return
    raise UsageError(
        f"dataset={name!r}: {builder.name} {builder.info.version} in {builder.data_dir_root} has "
        "no record ids, so its images cannot be put in the original files' order the split "
        f"rules index; rebuild it with `tfds build {builder.name}` (tensorflow-datasets "
        f"{tfds.__version__} writes a version with ids) and copy it here"
    )


def _feature_keys(builder: tfds.core.DatasetBuilder, name: str) -> tuple[str, str]:
    """The keys of the image feature and of the class feature: `image` and `label` when there
    are several (CIFAR-100 also has `coarse_label`), else the first in key order."""
    features = builder.info.features
    images = sorted(k for k, f in features.items() if isinstance(f, tfds.features.Image))
    classes = sorted(k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel))
    if not images or not classes:
        raise UsageError(
            f"dataset={name!r}: expected an image-classification data set, but its features "
            f"{', '.join(features)} have no Image and ClassLabel pair"
        )
    image_key = "image" if "image" in images else images[0]
    image = features[image_key]
    if None in image.shape or image.np_dtype != np.uint8:
        raise UsageError(
            f"dataset={name!r}: expected uint8 images of one size, got {image.np_dtype} images "
            f"of shape {image.shape}"
        )
    return image_key, "label" if "label" in classes else classes[0]


def _read_split(
    builder: tfds.core.DatasetBuilder, split: str, keys: tuple[str, ...], name: str
) -> list[np.ndarray]:
    """The columns `keys` of one split as numpy arrays, in the original files' order if the
    records carry TFDS ids such as b"train_00042" (CIFAR, SVHN): TFDS shuffles when it prepares."""
    if builder.info.splits and split not in builder.info.splits:
        raise UsageError(
            f"dataset={name!r}: expected a split {split!r}, it has {', '.join(builder.info.splits)}"
        )
    try:
        records = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError:  # TFDS's "could not find data": nothing prepared in data_dir
        raise _not_prepared(name, builder) from None
    features = builder.info.features
    has_ids = "id" in features and isinstance(features["id"], tfds.features.Text)
    columns = (*keys, "id") if has_ids else keys
    records = records.map(lambda record: tuple(record[k] for k in columns))
    batches = list(tfds.as_numpy(records.batch(_READ_BATCH)))
    arrays = [np.concatenate(column) for column in zip(*batches, strict=True)]
    order = _file_order(arrays.pop()) if has_ids else None
    return arrays if order is None else [array[order] for array in arrays]


def _file_order(ids: np.ndarray) -> np.ndarray | None:
    """Indices sorting records by the number that ends their id; None if some id has none."""
    numbers = [re.fullmatch(rb"[^0-9]*([0-9]+)", i) for i in ids]
    if not all(numbers):
        return None
    return np.argsort([int(match[1]) for match in numbers], kind="stable")


def _not_prepared(name: str, builder: tfds.core.DatasetBuilder) -> UsageError:
    """How to prepare a TFDS data set elsewhere and bring it here, in one line."""
    tfds_name, data_dir = builder.name, builder.data_dir_root
    python = (
        f"python -c 'import tensorflow_datasets as tfds; "
        f'tfds.builder("{tfds_name}", data_dir="{data_dir}").download_and_prepare()\''
    )
    return UsageError(
        f"{name} is not prepared in {data_dir}: on a machine with internet run "
        f"`tfds build {tfds_name} --data_dir={data_dir}` (or {python}) and copy {data_dir}/"
        f"{tfds_name} to this machine, then pass --data_dir={data_dir}; or pass download=True"
    )


def load_digits(size: int = 16, channels: int = 3) -> ImageDataset:
    """scikit-learn's 1,797 handwritten 8x8 digits (shipped in its wheel, so offline), as uint8
    images [N, size, size, channels]: values 0..16 scaled to 0..255, bilinear-resized, the grey
    level repeated over `channels`. Train = the first 1,297 of RandomState(0).permutation(1797),
    test = the other 500, each in sklearn's order."""
    if size < 1 or channels < 1:
        raise UsageError(f"size={size}, channels={channels}: expected positive integers")
    digits = sklearn.datasets.load_digits()
    images = np.round(digits.images * (255 / 16))[..., None]  # [1797, 8, 8, 1], 0..255
    if size != 8:
        images = np.round(tf.image.resize(images, (size, size), method="bilinear").numpy())
    images = np.repeat(np.clip(images, 0, 255).astype(np.uint8), channels, axis=-1)
    order = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(images))
    train, test = np.sort(order[:DIGITS_TRAIN_SIZE]), np.sort(order[DIGITS_TRAIN_SIZE:])
    labels = digits.target.astype(np.int64)
    return ImageDataset(
        name="digits",
        train_images=images[train],
        train_labels=labels[train],
        test_images=images[test],
        test_labels=labels[test],
        num_classes=10,
    )


def svhn_digit_to_mixmatch(labels: np.ndarray) -> np.ndarray:
    """TFDS svhn_cropped class (= the digit) -> MixMatch's SVHN class: digits 1..9 are 0..8,
    digit 0 is 9 (mixmatch.md §1.1). Use it to reproduce the MixMatch splits' class order."""
    return (np.asarray(labels) - 1) % 10


def svhn_mixmatch_to_digit(labels: np.ndarray) -> np.ndarray:
    """The inverse of `svhn_digit_to_mixmatch`: MixMatch's SVHN class -> the digit."""
    return (np.asarray(labels) + 1) % 10
