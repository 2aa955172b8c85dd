"""Labeled / unlabeled / validation splits of a train set, as index arrays (docs/data.md).

Three rules, each the exact procedure of an original code (positions are into the train set in
its files' order, as `ns3l.training.datasets.load_dataset` returns it):
- `oliver_tf_split`: [TF] `build_tfrecords.py` (seed 0) then `build_label_map.py --seed=s`
  (realistic_ssl.md §1.2-1.3);
- `oliver_pt_split`: [PT] `build_dataset.py --seed=s` (realistic_ssl.md §1.2-1.3, §8);
- `mixmatch_split`: MixMatch's `create_split.py --seed=s` and its validation holdout
  (mixmatch.md §1.3-1.4); with `labeled_in_unlabeled`, FixMatch's variant, whose unlabeled file
  holds every train image (fixmatch.md §2.1).
All are pure numpy, seeded with their own `RandomState`, and never touch numpy's global RNG."""

from collections import deque
from dataclasses import dataclass

import numpy as np

from ns3l.errors import UsageError

# [TF] build_label_map.py draws the maps of these sizes in this order with one shared rng.
TF_LABEL_MAP_SIZES = (100, 250, 500, 1000, 2000, 4000, 8000)


@dataclass(frozen=True, eq=False)
class Split:
    """Positions in the train set, int64 arrays, pairwise disjoint unless the rule says otherwise.

    `labeled` is ascending. `unlabeled` and `valid` are ascending in the Oliver rules; in
    `mixmatch_split` they follow the class-interleaved order of mixmatch.md §1.3 step 5. `rule`
    says which procedure made it, with its seeds, for split.json and the report."""

    labeled: np.ndarray  # [n_labeled]
    unlabeled: np.ndarray  # [n_unlabeled]
    valid: np.ndarray  # [n_valid]
    rule: str = ""

    @property
    def sizes(self) -> dict[str, int]:
        """Counts per part, as results.json records them."""
        return {name: len(getattr(self, name)) for name in ("labeled", "unlabeled", "valid")}

    def as_json(self) -> dict:
        """split.json: the rule and every labeled and validation position, so a run's images can
        be audited and shared; the unlabeled set is described, not listed (it is the rest)."""
        includes = bool(np.isin(self.labeled, self.unlabeled).any())
        unlabeled = "the train-split positions not in valid" + (
            " (labeled ones included)" if includes else " and not labeled"
        )
        return {
            "rule": self.rule,
            "labeled": self.labeled.tolist(),
            "valid": self.valid.tolist(),
            "unlabeled": unlabeled,
            "sizes": self.sizes,
        }


def oliver_tf_split(
    labels: np.ndarray,
    num_classes: int,
    n_labeled: int,
    n_valid: int,
    seed: int,
    unlabeled_includes_labeled: bool = True,
    build_seed: int = 0,
) -> Split:
    """[TF]'s label map `label_map_count_<n_labeled>` of `build_label_map.py --seed=seed` over the
    records of `build_tfrecords.py` at its default seed 0 (realistic_ssl.md §1.2-1.3).

    1. `RandomState(build_seed).permutation(N)`: its first `n_valid` are the validation set, the
       rest, in that order, the train split (key i = its i-th image).
    2. Per class, the keys of its images in train-split order; classes in the order they first
       appear in the train split (the JSON map's key order).
    3. One `RandomState(seed)` for every size of TF_LABEL_MAP_SIZES in turn (a size not in the
       list takes its place in ascending order) and, per size, every class in that order:
       `rng.choice(len(keys), n // K, replace=False)`. The draws of `n_labeled` are the labeled
       set, so they depend on the draws of the smaller sizes before it.
    Unlabeled: the whole train split, labeled images included ([TF]), or without them."""
    labels = _checked_labels(labels, num_classes)
    _check_sizes(labels, n_labeled, n_valid)
    _check_multiple(n_labeled, num_classes)
    order = np.random.RandomState(build_seed).permutation(len(labels))
    valid, train = order[:n_valid], order[n_valid:]
    train_labels = labels[train]
    first_seen = np.unique(train_labels, return_index=True)[1]
    classes = train_labels[np.sort(first_seen)]  # in order of first appearance
    keys = {c: np.flatnonzero(train_labels == c) for c in classes}
    per_class = n_labeled // num_classes
    for c in classes:
        _check_class_size(n_labeled, per_class, c, len(keys[c]))
    rng = np.random.RandomState(seed)
    for size in sorted({*TF_LABEL_MAP_SIZES, n_labeled}):
        # Sizes after ours would only draw further from the shared rng: ours is done by then.
        picks = [keys[c][rng.choice(len(keys[c]), size // num_classes, replace=False)]
                 for c in classes]  # fmt: skip
        if size == n_labeled:
            break
    labeled = np.sort(train[np.concatenate(picks)])
    unlabeled = train if unlabeled_includes_labeled else np.setdiff1d(train, labeled)
    rule = f"oliver-tf: build_tfrecords seed {build_seed}, build_label_map seed {seed}"
    return Split(_int64(labeled), _int64(np.sort(unlabeled)), _int64(np.sort(valid)), rule)


def oliver_pt_split(
    labels: np.ndarray,
    num_classes: int,
    n_labeled: int,
    n_valid: int,
    seed: int,
    unlabeled_includes_labeled: bool = False,
) -> Split:
    """[PT]'s `build_dataset.py --seed=seed` (realistic_ssl.md §1.2-1.3, §8).

    `RandomState(seed).permutation(N)`: its first `n_valid` are the validation set (so it changes
    with the seed), the rest the train split; per class in ascending order, the first
    `n_labeled / K` train-split images of that class (in permuted order) are labeled
    (`split_l_u`). Unlabeled: the other train-split images ([PT], and the paper's 41,000 /
    64,931 / 35,000), or the whole train split."""
    labels = _checked_labels(labels, num_classes)
    _check_sizes(labels, n_labeled, n_valid)
    _check_multiple(n_labeled, num_classes)
    order = np.random.RandomState(seed).permutation(len(labels))
    valid, train = order[:n_valid], order[n_valid:]
    per_class = n_labeled // num_classes
    labeled = []
    for c in np.unique(labels[train]):
        members = train[labels[train] == c]
        _check_class_size(n_labeled, per_class, c, len(members))
        labeled.append(members[:per_class])
    labeled = np.sort(np.concatenate(labeled))
    unlabeled = train if unlabeled_includes_labeled else np.setdiff1d(train, labeled)
    rule = f"oliver-pt: build_dataset seed {seed}"
    return Split(_int64(labeled), _int64(np.sort(unlabeled)), _int64(np.sort(valid)), rule)


def _check_multiple(n_labeled: int, num_classes: int) -> None:
    if n_labeled % num_classes:
        raise UsageError(
            f"n_labeled={n_labeled}: expected a multiple of the number of classes K={num_classes}"
        )


def _check_class_size(n_labeled: int, per_class: int, c: int, available: int) -> None:
    if available < per_class:
        raise UsageError(
            f"n_labeled={n_labeled} needs {per_class} images of class {c}: "
            f"the train split has {available}"
        )


def mixmatch_split(
    labels: np.ndarray,
    num_classes: int,
    n_labeled: int,
    seed: int,
    n_valid: int = 1,
    equal_proportions: bool = False,
    fixed_labeled: np.ndarray | None = None,
    labeled_in_unlabeled: bool = False,
) -> Split:
    """MixMatch's `create_split` rule and its validation holdout (mixmatch.md §1.3-1.4).

    Labeled: per-class position lists in file order, each shuffled with one `RandomState(seed)`
    (class 0 first; seed 0 = no shuffle), then `n_labeled` greedy proportional picks, so SVHN's
    labeled set follows its class frequencies. Unlabeled: every other position, in the
    class-interleaved order of step 5; its first `n_valid` are the validation set.

    Args:
        labels: [N] int class of every record (STL-10: the 100k unlabeled ones get dummy class 0).
        equal_proportions: s_c = 1 for every class (STL-10, step 1) instead of count_c / max.
        fixed_labeled: positions to label instead of steps 2-3 (an STL-10 official fold, step 4);
            `n_labeled` and `seed` are then unused.
        labeled_in_unlabeled: FixMatch's pool (fixmatch.md §2.1, create_unlabeled.py): every
            position, labeled ones included, in the same class-interleaved order; the
            validation set is its head, so it may hold labeled images.
    """
    labels = _checked_labels(labels, num_classes)
    counts = np.bincount(labels, minlength=num_classes)
    shares = np.ones(num_classes) if equal_proportions else counts / counts.max()
    if fixed_labeled is None:
        _check_sizes(labels, n_labeled, n_valid)
        labeled = _proportional_pick(labels, num_classes, n_labeled, seed, shares)
    else:
        labeled = np.unique(np.asarray(fixed_labeled, np.int64))
        _check_sizes(labels, len(labeled), n_valid)
        if labeled[0] < 0 or labeled[-1] >= len(labels):
            raise UsageError(
                f"fixed_labeled: expected positions in [0, {len(labels)}), got {labeled[0]}..."
                f"{labeled[-1]}"
            )
    excluded = np.isin(np.arange(len(labels)), labeled) & (not labeled_in_unlabeled)
    order = _interleaved(labels, num_classes, excluded, shares)
    picked = f"seed {seed}" if fixed_labeled is None else "given labeled positions"
    rule = f"mixmatch: create_split, {picked}" + (", equal proportions" * equal_proportions)
    if labeled_in_unlabeled:
        rule = rule.replace("mixmatch:", "fixmatch:") + ", unlabeled = every train image"
    return Split(_int64(labeled), _int64(order[n_valid:]), _int64(order[:n_valid]), rule)


def _proportional_pick(
    labels: np.ndarray, num_classes: int, n_labeled: int, seed: int, shares: np.ndarray
) -> np.ndarray:
    """Steps 2-3 of mixmatch.md §1.3: the labeled positions, ascending."""
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    if seed != 0:
        # One generator shuffling class 0, then 1, ...: the draws of the original's
        # np.random.seed(seed) + np.random.shuffle, without touching the global RNG.
        rng = np.random.RandomState(seed)
        for class_members in members:
            rng.shuffle(class_members)
    taken = np.zeros(num_classes, np.int64)
    for _ in range(n_labeled):
        c = _next_class(shares, taken)
        if taken[c] == len(members[c]):
            raise UsageError(
                f"n_labeled={n_labeled}: class {c} has only {len(members[c])} images to label"
            )
        taken[c] += 1
    return np.sort(np.concatenate([m[:k] for m, k in zip(members, taken, strict=True)]))


def _interleaved(
    labels: np.ndarray, num_classes: int, is_labeled: np.ndarray, shares: np.ndarray
) -> np.ndarray:
    """Step 5 of mixmatch.md §1.3: the non-labeled positions, class-interleaved."""
    queues = [deque() for _ in range(num_classes)]
    written = np.zeros(num_classes, np.int64)
    order = []
    c = _next_class(shares, written)
    for position in np.flatnonzero(~is_labeled):
        queues[labels[position]].append(position)
        # Write while the class the rule asks for is at hand; otherwise read the next record.
        while queues[c]:
            order.append(queues[c].popleft())
            written[c] += 1
            c = _next_class(shares, written)
    # The stream is exhausted: flush what is left, class by class.
    order.extend(p for queue in queues for p in queue)
    return np.array(order, np.int64)


def _next_class(shares: np.ndarray, counts: np.ndarray) -> int:
    """argmax_c (s_c - n_c / max(max_c' n_c', 1)), first index on ties (mixmatch.md §1.3 step 3)."""
    return int(np.argmax(shares - counts / max(counts.max(), 1)))


def _check_sizes(labels: np.ndarray, n_labeled: int, n_valid: int) -> None:
    """One-line UsageErrors for sizes no split can satisfy."""
    if n_labeled <= 0 or n_valid < 0:
        raise UsageError(
            f"n_labeled={n_labeled}, n_valid={n_valid}: expected n_labeled > 0 and n_valid >= 0"
        )
    if n_labeled + n_valid > len(labels):
        raise UsageError(
            f"n_labeled={n_labeled} + n_valid={n_valid}: expected at most the {len(labels)} "
            "train images"
        )


def _checked_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """`labels` as an int64 array, or a one-line UsageError if a class is out of range."""
    labels = np.asarray(labels, np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(
            f"labels in {labels.min()}..{labels.max()}: expected classes 0..{num_classes - 1}"
        )
    return labels


def _int64(positions: np.ndarray) -> np.ndarray:
    return np.asarray(positions, np.int64)
