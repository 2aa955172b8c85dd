"""STL-10's official folds mapped to TFDS's record order by image, on mock TFDS data."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mixmatch.data import prepare, stl10_fold
from ns3l.errors import UsageError
from ns3l.training.datasets import load_dataset


def write_binary_release(directory, train_images, order, folds):
    """train_X.bin holding `train_images[order]` in the binary layout (per image 3 x 96 x 96,
    column-major) and fold_indices.txt with one line per fold."""
    binary = np.ascontiguousarray(train_images[order].transpose(0, 3, 2, 1))
    (directory / "train_X.bin").write_bytes(binary.tobytes())
    (directory / "fold_indices.txt").write_text(
        "".join(" ".join(map(str, fold)) + " \n" for fold in folds)
    )
    return directory / "fold_indices.txt"


@pytest.fixture
def stl10(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with tfds.testing.mock_data(num_examples=40):
        yield load_dataset("stl10")


def test_a_fold_line_maps_to_the_tfds_positions_of_the_same_images(stl10, tmp_path):
    order = np.random.RandomState(0).permutation(40)  # the binary's order against TFDS's
    folds = [[0, 1, 2], [5, 17, 39, 8], [3]]
    path = write_binary_release(tmp_path, stl10.train_images, order, folds)
    for seed, fold in enumerate(folds):
        # binary image i is TFDS image order[i]
        np.testing.assert_array_equal(stl10_fold(path, seed, stl10.train_images), order[fold])


def test_a_run_uses_the_fold_of_its_seed_and_says_so(stl10, tmp_path):
    order = np.random.RandomState(1).permutation(40)
    path = write_binary_release(tmp_path, stl10.train_images, order, [[0, 1], [7, 9, 11, 30]])
    with tfds.testing.mock_data(num_examples=40):
        data = prepare("stl10", n_labeled=4, n_valid=1, seed=1, stl10_folds=str(path))
        default = prepare("stl10", n_labeled=10, n_valid=1, seed=1)
    np.testing.assert_array_equal(data.split.labeled, np.sort(order[[7, 9, 11, 30]]))
    assert data.split.rule.startswith("stl10: official fold line 1 of ")
    assert default.split.rule.startswith("stl10: no official fold (--stl10_folds)")
    assert len(data.split.unlabeled) == 40 + 40 - 4 - 1  # train and unlabelled, minus fold, valid


def test_missing_or_foreign_files_are_one_line_errors(stl10, tmp_path):
    with pytest.raises(UsageError, match="train_X.bin is missing; expected fold_indices.txt"):
        (tmp_path / "fold_indices.txt").write_text("0 1\n")
        stl10_fold(tmp_path / "fold_indices.txt", 0, stl10.train_images)
    path = write_binary_release(tmp_path, stl10.train_images, np.arange(40), [[0, 1]])
    with pytest.raises(UsageError, match="--seed=3: .* has fold lines 0..0"):
        stl10_fold(path, 3, stl10.train_images)
    other = np.random.RandomState(5).randint(0, 256, stl10.train_images.shape, np.uint8)
    write_binary_release(tmp_path, other, np.arange(40), [[0, 1]])
    with pytest.raises(UsageError, match="image 0 is not in TFDS's train split"):
        stl10_fold(path, 0, stl10.train_images)
