"""Data sets: TFDS through mock_data or a tiny data set prepared here, digits for real values.

No test downloads: conftest points TFDS_DATA_DIR at an empty temp dir, and every TFDS read is
under mock_data or from a directory a fixture prepared from an in-memory generator."""

import time

import numpy as np
import pytest
import sklearn.datasets
import tensorflow as tf
import tensorflow_datasets as tfds

from ns3l.errors import UsageError
from ns3l.training.datasets import (
    FILE_ORDER_REQUIRED,
    load_dataset,
    load_digits,
    require_record_ids,
    svhn_digit_to_mixmatch,
    svhn_mixmatch_to_digit,
)

# Per-class counts of sklearn's digits 0..9 (its documentation's 1,797 images).
DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]

with tfds.core.registered.skip_registration():  # found by name only in the prepared data_dir

    class Ns3lTinyShapes(tfds.core.GeneratorBasedBuilder):
        """A user's own data set: 5x7 grey images whose pixels hold their position."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self) -> tfds.core.DatasetInfo:
            features = {
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(5, 7, 1)),
                "label": tfds.features.ClassLabel(num_classes=3),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features)
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(30), "test": self._generate_examples(9)}

        def _generate_examples(self, n):
            for i in range(n):
                image = np.full((5, 7, 1), i, np.uint8)
                yield i, {"id": f"record_{i:05d}", "image": image, "label": i % 3}

    class Ns3lTrainOnly(Ns3lTinyShapes):
        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(6)}

    class Ns3lRemote(Ns3lTinyShapes):
        """A data set whose files live on a host that never resolves (RFC 6761's .invalid)."""

        url_infos = {"https://ns3l-data.invalid/images.tar.gz": None}  # its checksums' keys

        def _split_generators(self, dl_manager):
            path = dl_manager.download(next(iter(self.url_infos)))
            return {"train": self._generate_examples(int(path.exists()))}

    class Ns3lNoIds(Ns3lTinyShapes):
        """Like svhn_cropped 3.0.0: the same records without their `id`."""

        VERSION = tfds.core.Version("3.0.0")

        def _info(self) -> tfds.core.DatasetInfo:
            features = {
                "image": tfds.features.Image(shape=(5, 7, 1)),
                "label": tfds.features.ClassLabel(num_classes=3),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features)
            )

        def _generate_examples(self, n):
            for i in range(n):
                yield i, {"image": np.full((5, 7, 1), i, np.uint8), "label": i % 3}


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory) -> str:
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    for builder in (Ns3lTinyShapes, Ns3lTrainOnly, Ns3lNoIds):
        builder(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_digits_shapes_counts_and_range():
    digits = load_digits()
    assert digits.train_images.shape == (1_297, 16, 16, 3)
    assert digits.test_images.shape == (500, 16, 16, 3)
    assert digits.train_images.dtype == np.uint8 and digits.train_labels.dtype == np.int64
    assert digits.num_classes == 10 and digits.extra_images is None
    counts = np.bincount(digits.train_labels) + np.bincount(digits.test_labels)
    np.testing.assert_array_equal(counts, DIGITS_COUNTS)
    assert digits.train_images.min() == 0 and digits.train_images.max() == 255
    np.testing.assert_array_equal(digits.train_images[..., 0], digits.train_images[..., 2])


def test_digits_split_is_the_documented_permutation():
    digits = load_digits(size=8, channels=1)  # no resize: exactly round(x * 255 / 16)
    raw = sklearn.datasets.load_digits()
    order = np.random.RandomState(0).permutation(1_797)
    test = np.sort(order[1_297:])
    np.testing.assert_array_equal(digits.test_images[..., 0], np.round(raw.images[test] * 255 / 16))
    np.testing.assert_array_equal(digits.test_labels, raw.target[test])
    assert not np.isin(test, order[:1_297]).any()


def test_digits_upscaled_keeps_the_digit():
    big, small = load_digits(size=32), load_digits(size=8, channels=1)
    back = tf.image.resize(big.train_images[..., :1].astype(np.float32), (8, 8), "area").numpy()
    correlation = np.corrcoef(back.ravel(), small.train_images.astype(np.float32).ravel())[0, 1]
    assert correlation > 0.95
    np.testing.assert_array_equal(big.train_labels, small.train_labels)


def test_digits_is_deterministic_and_named():
    a, b = load_digits(), load_dataset("digits")
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert b.name == "digits"


@pytest.mark.parametrize(
    ("name", "shape", "num_classes"),
    [
        ("cifar10", (32, 32, 3), 10),
        ("cifar100", (32, 32, 3), 100),  # the fine `label`, not the 20-class `coarse_label`
        ("svhn", (32, 32, 3), 10),
        ("mnist", (28, 28, 1), 10),  # any TFDS image-classification data set
    ],
)
def test_tfds_datasets_under_mock_data(tmp_path, name, shape, num_classes):
    with tfds.testing.mock_data(num_examples=40):
        dataset = load_dataset(name, data_dir=str(tmp_path))
    assert dataset.name == name and dataset.num_classes == num_classes
    assert dataset.train_images.shape == (40, *shape) and dataset.train_images.dtype == np.uint8
    assert dataset.test_images.shape == (40, *shape)
    assert dataset.train_labels.shape == (40,) and dataset.train_labels.dtype == np.int64
    assert 0 <= dataset.train_labels.min() and dataset.train_labels.max() < num_classes
    assert dataset.extra_images is None


def test_cifar100_reads_fine_labels(tmp_path):
    with tfds.testing.mock_data(num_examples=60):
        labels = load_dataset("cifar100", data_dir=str(tmp_path)).train_labels
    assert labels.max() >= 20  # a coarse label never is


def test_stl10_has_unlabelled_extra_images(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        stl10 = load_dataset("stl10", data_dir=str(tmp_path))
    assert stl10.train_images.shape == (12, 96, 96, 3)
    assert stl10.extra_images.shape == (12, 96, 96, 3) and stl10.extra_images.dtype == np.uint8


def test_not_image_classification_is_one_line(tmp_path):
    with tfds.testing.mock_data(num_examples=5), pytest.raises(UsageError) as error:
        load_dataset("iris", data_dir=str(tmp_path))  # features + label, no image
    assert "dataset='iris'" in str(error.value) and "no Image and ClassLabel" in str(error.value)


def test_not_prepared_fails_fast_and_says_how(tmp_path):
    start = time.monotonic()
    with pytest.raises(UsageError) as error:
        load_dataset("svhn", data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert message.startswith(f"svhn is not prepared in {tmp_path}: ")
    assert f"`tfds build svhn_cropped --data_dir={tmp_path}`" in message
    assert "download=True" in message and "\n" not in message


@pytest.mark.parametrize("name", ["cifar11", "CIFAR-10"])  # unknown to TFDS; not a TFDS name
def test_unknown_name_lists_ours_not_tfds(tmp_path, name):
    with pytest.raises(UsageError) as error:
        load_dataset(name, data_dir=str(tmp_path))
    assert str(error.value) == (
        f"dataset={name!r}: expected one of cifar10, cifar100, svhn, stl10, digits, "
        f"or a TFDS image-classification data set in {tmp_path}"
    )


def test_own_prepared_dataset_in_file_order(prepared_dir):
    dataset = load_dataset("ns3l_tiny_shapes", data_dir=prepared_dir)
    # TFDS shuffles on prepare; the ids put every record back at its position.
    tfds_order = tfds.builder("ns3l_tiny_shapes", data_dir=prepared_dir).as_dataset(split="train")
    assert [int(r["image"][0, 0, 0]) for r in tfds_order] != list(range(30))
    np.testing.assert_array_equal(dataset.train_images[:, 2, 3, 0], np.arange(30))
    np.testing.assert_array_equal(dataset.train_labels, np.arange(30) % 3)
    assert dataset.train_images.shape == (30, 5, 7, 1) and dataset.num_classes == 3
    np.testing.assert_array_equal(dataset.test_images[:, 0, 0, 0], np.arange(9))


def test_a_version_without_record_ids_is_refused_where_the_split_needs_file_order(prepared_dir):
    old = tfds.builder("ns3l_no_ids", data_dir=prepared_dir)
    with pytest.raises(UsageError) as error:
        require_record_ids("svhn", old)
    message = str(error.value)
    assert message.startswith("dataset='svhn': ns3l_no_ids 3.0.0 in ") and "\n" not in message
    assert "has no record ids" in message and "`tfds build ns3l_no_ids`" in message
    require_record_ids("svhn", tfds.builder("ns3l_tiny_shapes", data_dir=prepared_dir))
    assert FILE_ORDER_REQUIRED == ("cifar10", "cifar100", "svhn")
    # A data set outside the rules' assumption loads in TFDS's order, as before.
    assert len(load_dataset("ns3l_no_ids", data_dir=prepared_dir).train_labels) == 30


def test_missing_split_is_one_line(prepared_dir):
    with pytest.raises(UsageError, match="dataset='ns3l_train_only': expected a split 'test'"):
        load_dataset("ns3l_train_only", data_dir=prepared_dir)


def test_svhn_class_order_helpers():
    digits = np.arange(10)
    np.testing.assert_array_equal(svhn_digit_to_mixmatch(digits), [9, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(svhn_mixmatch_to_digit(svhn_digit_to_mixmatch(digits)), digits)
