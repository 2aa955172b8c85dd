"""Split rules against hand-computed values, the spec's known counts, and numpy twins."""

import json
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ns3l.errors import UsageError
from ns3l.training.datasets import load_dataset
from ns3l.training.splits import Split, mixmatch_split, oliver_pt_split, oliver_tf_split

CIFAR_LIKE = np.tile(np.arange(10), 5_000)  # 50,000 labels, 5,000 per class
# SVHN train class sizes in MixMatch's class order (mixmatch.md §1.3), in a fixed shuffled order.
SVHN_SIZES = [13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659, 4948]
SVHN_LIKE = np.random.RandomState(7).permutation(np.repeat(np.arange(10), SVHN_SIZES))


def assert_partition(split: Split, n: int) -> None:
    """labeled, unlabeled and valid are pairwise disjoint and together cover range(n)."""
    everything = np.concatenate([split.labeled, split.unlabeled, split.valid])
    np.testing.assert_array_equal(np.sort(everything), np.arange(n))
    assert all(a.dtype == np.int64 for a in (split.labeled, split.unlabeled, split.valid))


# 12 images of 2 classes for the hand-worked cases below.
TINY = np.array([0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0])


def test_oliver_tf_rule_by_hand():
    # build_tfrecords: RandomState(0).permutation(12) = [6, 11, 4, 10, 2, 8, 1, 7, 9, 3, 0, 5];
    # valid = {6, 11}; the train split is the other 10 in that order, labels 1 1 0 0 1 1 1 0 0 1.
    # Classes in order of first appearance: 1 (keys 0 1 4 5 6 9), then 0 (keys 2 3 7 8).
    # build_label_map --seed=3, size 4 first (before 100): RandomState(3).choice(6, 2) = [3, 5]
    # -> keys 5, 9 -> images 7, 5; then choice(4, 2) = [3, 2] -> keys 8, 7 -> images 0, 3.
    split = oliver_tf_split(TINY, 2, n_labeled=4, n_valid=2, seed=3)
    np.testing.assert_array_equal(split.valid, [6, 11])
    np.testing.assert_array_equal(split.labeled, [0, 3, 5, 7])
    # [TF]: the unlabeled stream is the whole train split, the labeled images included.
    np.testing.assert_array_equal(split.unlabeled, [0, 1, 2, 3, 4, 5, 7, 8, 9, 10])
    assert split.rule == "oliver-tf: build_tfrecords seed 0, build_label_map seed 3"


def test_oliver_pt_rule_by_hand():
    # build_dataset --seed=3: RandomState(3).permutation(12) = [5, 4, 1, 2, 11, 6, 7, 0, 3, 9,
    # 8, 10]; valid = {5, 4}; train split 1 2 11 6 7 0 3 9 8 10 with labels 1 0 0 0 1 0 0 1 0 1.
    # split_l_u: class 0's first two are 2, 11; class 1's first two are 1, 7.
    split = oliver_pt_split(TINY, 2, n_labeled=4, n_valid=2, seed=3)
    np.testing.assert_array_equal(split.valid, [4, 5])
    np.testing.assert_array_equal(split.labeled, [1, 2, 7, 11])
    np.testing.assert_array_equal(split.unlabeled, [0, 3, 6, 8, 9, 10])
    assert split.rule == "oliver-pt: build_dataset seed 3"


def tf_label_map_twin(labels: np.ndarray, n_valid: int, seed: int, n_labeled: int) -> np.ndarray:
    """build_tfrecords.py + build_label_map.py as the originals write them: string keys, a JSON
    map label -> keys, sizes 100 ... 8000 drawn in turn from one rng."""
    permuted = np.random.RandomState(0).permutation(len(labels))
    train = permuted[n_valid:]
    label_map = {}
    for key, label in enumerate(labels[train]):
        label_map.setdefault(str(label), []).append(str(key))
    label_map = json.loads(json.dumps(label_map))
    rng = np.random.RandomState(seed)
    for count in (100, 250, 500, 1000, 2000, 4000, 8000):
        chosen = []
        for keys in label_map.values():
            draw = rng.choice(len(keys), count // len(label_map), replace=False)
            chosen += [int(keys[i]) for i in draw]
        if count == n_labeled:
            return np.sort(train[chosen])
    raise AssertionError(n_labeled)


@pytest.mark.parametrize(("n_labeled", "seed"), [(250, 1), (4_000, 2)])
def test_oliver_tf_rule_equals_the_original_scripts(n_labeled, seed):
    labels = np.random.RandomState(11).permutation(CIFAR_LIKE)
    split = oliver_tf_split(labels, 10, n_labeled, n_valid=5_000, seed=seed)
    np.testing.assert_array_equal(split.labeled, tf_label_map_twin(labels, 5_000, seed, n_labeled))
    assert (len(split.labeled), len(split.unlabeled), len(split.valid)) == (n_labeled, 45_000,
                                                                             5_000)  # fmt: skip


def test_a_size_outside_the_tf_list_is_drawn_first_when_it_is_the_smallest():
    labels = np.random.RandomState(11).permutation(CIFAR_LIKE)
    # 50 sorts before 100, so its map is the first draw of RandomState(seed): 5 per class, the
    # classes in order of first appearance in the train split.
    train = np.random.RandomState(0).permutation(50_000)[5_000:]
    classes = list(dict.fromkeys(labels[train]))
    rng = np.random.RandomState(1)
    keys = [np.flatnonzero(labels[train] == c) for c in classes]
    want = np.sort(np.concatenate([train[k[rng.choice(len(k), 5, replace=False)]] for k in keys]))
    np.testing.assert_array_equal(oliver_tf_split(labels, 10, 50, 5_000, seed=1).labeled, want)


def test_oliver_pt_cifar_sizes_and_partition():
    split = oliver_pt_split(CIFAR_LIKE, 10, n_labeled=4_000, n_valid=5_000, seed=1)
    assert (len(split.labeled), len(split.unlabeled), len(split.valid)) == (4_000, 41_000, 5_000)
    np.testing.assert_array_equal(np.bincount(CIFAR_LIKE[split.labeled]), [400] * 10)
    assert_partition(split, 50_000)


def test_oliver_pt_validation_follows_the_seed_and_tf_does_not():
    pt = [oliver_pt_split(CIFAR_LIKE, 10, 250, 5_000, seed=s) for s in (1, 2, 1)]
    tf_ = [oliver_tf_split(CIFAR_LIKE, 10, 250, 5_000, seed=s) for s in (1, 2)]
    assert len(np.intersect1d(pt[0].valid, pt[1].valid)) < 1_000  # ~500 expected by chance
    np.testing.assert_array_equal(pt[0].valid, pt[2].valid)
    np.testing.assert_array_equal(pt[0].labeled, pt[2].labeled)
    np.testing.assert_array_equal(tf_[0].valid, tf_[1].valid)
    assert len(np.intersect1d(tf_[0].labeled, tf_[1].labeled)) < 25  # ~1.4 expected


def test_the_unlabeled_set_of_either_rule_can_include_or_exclude_the_labeled_images():
    tf_disjoint = oliver_tf_split(CIFAR_LIKE, 10, 4_000, 5_000, 1, unlabeled_includes_labeled=False)
    assert_partition(tf_disjoint, 50_000)
    pt_whole = oliver_pt_split(CIFAR_LIKE, 10, 4_000, 5_000, 1, unlabeled_includes_labeled=True)
    assert len(pt_whole.unlabeled) == 45_000 and np.isin(pt_whole.labeled, pt_whole.unlabeled).all()
    assert not np.isin(pt_whole.valid, pt_whole.unlabeled).any()
    assert "labeled ones included" in pt_whole.as_json()["unlabeled"]


def test_split_json_lists_the_rule_and_every_labeled_and_validation_position():
    record = json.loads(json.dumps(oliver_pt_split(TINY, 2, 4, 2, seed=3).as_json()))
    assert record == {
        "rule": "oliver-pt: build_dataset seed 3", "labeled": [1, 2, 7, 11], "valid": [4, 5],
        "unlabeled": "the train-split positions not in valid and not labeled",
        "sizes": {"labeled": 4, "unlabeled": 6, "valid": 2},
    }  # fmt: skip


@pytest.mark.parametrize("rule", [oliver_tf_split, oliver_pt_split])
@pytest.mark.parametrize(
    ("n_labeled", "n_valid", "message"),
    [
        (250, 5_000, "n_labeled=250: expected a multiple of the number of classes K=100"),
        (10_000, 45_000, "n_labeled=10000 + n_valid=45000: expected at most the 50000"),
        (0, 5_000, "n_labeled=0, n_valid=5000: expected n_labeled > 0"),
    ],
)
def test_oliver_bad_sizes(rule, n_labeled, n_valid, message):
    labels = np.tile(np.arange(100), 500)
    with pytest.raises(UsageError, match=re.escape(message)):
        rule(labels, 100, n_labeled, n_valid, seed=1)


@pytest.mark.parametrize("rule", [oliver_tf_split, oliver_pt_split])
def test_oliver_too_few_images_of_a_class(rule):
    labels = np.array([0] * 30 + [1] * 3)
    with pytest.raises(UsageError, match="needs 4 images of class 1: the train split has 3"):
        rule(labels, 2, n_labeled=8, n_valid=0, seed=1)


@pytest.mark.parametrize(
    ("n_labeled", "counts"),
    [
        (250, [47, 36, 29, 25, 24, 20, 19, 17, 16, 17]),
        (1_000, [189, 144, 116, 102, 94, 78, 76, 69, 64, 68]),
    ],
)
def test_mixmatch_svhn_known_counts(n_labeled, counts):
    split = mixmatch_split(SVHN_LIKE, 10, n_labeled, seed=1)
    np.testing.assert_array_equal(np.bincount(SVHN_LIKE[split.labeled]), counts)
    assert (len(split.unlabeled), len(split.valid)) == (73_257 - n_labeled - 1, 1)
    assert_partition(split, 73_257)


@pytest.mark.parametrize(("n_labeled", "per_class"), [(250, 25), (4_000, 400)])
def test_mixmatch_cifar_is_balanced(n_labeled, per_class):
    split = mixmatch_split(CIFAR_LIKE, 10, n_labeled, seed=3)
    np.testing.assert_array_equal(np.bincount(CIFAR_LIKE[split.labeled]), [per_class] * 10)
    assert len(split.unlabeled) == 50_000 - n_labeled - 1


def test_mixmatch_seed_shuffles_like_legacy_global_numpy():
    split = mixmatch_split(CIFAR_LIKE, 10, 250, seed=4)
    state = np.random.get_state()
    np.random.seed(4)  # the original's way: global seed, then shuffle class 0, 1, ...
    lists = [list(np.flatnonzero(CIFAR_LIKE == c)) for c in range(10)]
    for positions in lists:
        np.random.shuffle(positions)
    np.random.set_state(state)
    np.testing.assert_array_equal(split.labeled, np.sort([p for ps in lists for p in ps[:25]]))


def test_mixmatch_leaves_global_rng_alone():
    np.random.seed(123)
    mixmatch_split(CIFAR_LIKE, 10, 250, seed=5)
    assert np.random.randint(1 << 30) == np.random.RandomState(123).randint(1 << 30)


def test_mixmatch_hand_computed_tiny_case():
    # counts [2, 3, 2] -> s = [2/3, 1, 2/3]; picks: class 1, 0, 2 -> first of each, seed 0.
    labels = np.array([1, 1, 0, 2, 0, 2, 1])
    split = mixmatch_split(labels, 3, n_labeled=3, seed=0, n_valid=1)
    np.testing.assert_array_equal(split.labeled, [0, 2, 3])
    # Stream 1(c1) 4(c0) 5(c2) 6(c1): each is written as soon as it is read.
    np.testing.assert_array_equal(split.valid, [1])
    np.testing.assert_array_equal(split.unlabeled, [4, 5, 6])


def test_mixmatch_unlabeled_order_is_class_interleaved_by_hand():
    # Position 3 (class 2) labeled; s = [2/3, 1, 2/3]. The rule asks for 1, 0, 2, then 1, 0, 2,
    # so record 1 waits in its queue until 5 has been written, and 6 is flushed at the end.
    labels = np.array([1, 1, 0, 2, 0, 2, 1])
    split = mixmatch_split(labels, 3, 0, seed=0, n_valid=2, fixed_labeled=np.array([3]))
    np.testing.assert_array_equal(split.labeled, [3])
    np.testing.assert_array_equal(split.valid, [0, 2])
    np.testing.assert_array_equal(split.unlabeled, [5, 1, 4, 6])


def test_mixmatch_unlabeled_head_is_stratified():
    split = mixmatch_split(SVHN_LIKE, 10, 1_000, seed=2, n_valid=5_000)
    head = np.bincount(SVHN_LIKE[split.valid], minlength=10)
    expected = np.array(SVHN_SIZES) * 5_000 / sum(SVHN_SIZES)
    assert np.abs(head - expected).max() <= 2  # proportional up to rounding
    np.testing.assert_array_equal(SVHN_LIKE[split.valid[:10]], [0, 1, 2, 3, 4, 5, 6, 7, 9, 8])


def test_mixmatch_equal_proportions_and_fixed_fold():
    # STL-10 layout: 50 train images of 10 classes, then 100 unlabeled with dummy class 0.
    labels = np.concatenate([np.tile(np.arange(10), 5), np.zeros(100, np.int64)])
    fold = np.arange(10)
    split = mixmatch_split(labels, 10, 0, seed=0, fixed_labeled=fold, equal_proportions=True)
    np.testing.assert_array_equal(split.labeled, fold)
    assert_partition(split, 150)
    head = labels[np.concatenate([split.valid, split.unlabeled[:19]])]
    # s_c = 1 cycles through the classes; class-0 shares 104/104 vs 4/104 would repeat class 0
    # from the second round on.
    np.testing.assert_array_equal(head, np.tile(np.arange(10), 2))
    proportional = mixmatch_split(labels, 10, 0, seed=0, fixed_labeled=fold)
    head = labels[np.concatenate([proportional.valid, proportional.unlabeled[:19]])]
    np.testing.assert_array_equal(head, [*range(10)] + [0] * 10)


def test_mixmatch_seeds_differ_and_repeat():
    a, b, again = (mixmatch_split(CIFAR_LIKE, 10, 250, seed=s) for s in (1, 2, 1))
    assert len(np.intersect1d(a.labeled, b.labeled)) < 25
    np.testing.assert_array_equal(a.labeled, again.labeled)
    np.testing.assert_array_equal(a.unlabeled, again.unlabeled)


def test_mixmatch_errors():
    with pytest.raises(UsageError, match="class 1 has only 3 images to label"):
        mixmatch_split(
            np.array([0] * 30 + [1] * 3), 2, n_labeled=20, seed=1, equal_proportions=True
        )
    with pytest.raises(UsageError, match=r"fixed_labeled: expected positions in \[0, 5\)"):
        mixmatch_split(np.zeros(5, np.int64), 1, 0, seed=0, fixed_labeled=np.array([2, 7]))
    with pytest.raises(UsageError, match=r"labels in 0..3: expected classes 0..2"):
        mixmatch_split(np.array([0, 3]), 3, 1, seed=0)


def test_splits_of_mock_tfds_labels(tmp_path):
    with tfds.testing.mock_data(num_examples=300):
        labels = load_dataset("cifar10", data_dir=str(tmp_path)).train_labels
    oliver = oliver_pt_split(labels, 10, n_labeled=50, n_valid=30, seed=1)
    np.testing.assert_array_equal(np.bincount(labels[oliver.labeled], minlength=10), [5] * 10)
    assert_partition(oliver, 300)
    mixmatch = mixmatch_split(labels, 10, n_labeled=40, seed=1, n_valid=10)
    assert (len(mixmatch.labeled), len(mixmatch.unlabeled), len(mixmatch.valid)) == (40, 250, 10)
    assert_partition(mixmatch, 300)
