"""NS3L in a plain `model.fit` in two lines, on the embedded digits set (offline, about a minute).

    logits = keras.layers.Dense(10)(features)
    logits = ns3l.NS3L(weight=1.0, threshold=0.04)(logits)   # the only NS3L line

Each batch holds 32 labeled and 32 unlabeled 16x16 digits. The cross-entropy sees the labeled
rows only (sample weight 0 on the others, so it is divided by all 64 rows, as in Oliver et al.);
NS3L sees every row, with negatives from the model's own detached probabilities (Algorithm 1).
`--two_views` instead follows the released code: negatives from one augmented view, the loss
(and the cross-entropy) on a second view. The script trains the same small CNN with and without
NS3L from the same initial weights and prints both test errors over `--seeds` labeled splits.

Measured here (2026-11-25, 2 CPU cores, 1,500 steps, seeds 1-3, test error % mean ± std):

    supervised                          14.27 ± 1.95
    + NS3L, one view  (λ1 = 1)          14.13 ± 1.91
    + NS3L, two views (λ1 = 1)          14.53 ± 2.79
    + NS3L, two views (λ1 = 0.3)        13.00 ± 1.56

Every difference is inside the seed-to-seed spread: this small CNN trained for 1,500 steps is a
demonstration of the API, not evidence for or against NS3L. The Oliver-stack demo
(realistic_ssl) is the place for that comparison.
"""

import argparse

import keras
import numpy as np
import tensorflow as tf

import ns3l
from ns3l.training.datasets import load_digits
from ns3l.training.splits import oliver_pt_split


def cnn() -> keras.Model:
    """A small CNN whose training call draws a new random shift each time (a new view)."""
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect")(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def build_model(with_ns3l: bool, weight: float, threshold: float, two_views: bool) -> keras.Model:
    inputs = keras.Input((16, 16, 1))
    net = cnn()
    logits = net(inputs)
    if with_ns3l and two_views:
        # The released code's form: negatives from one view, the loss on a fresh view. The layer's
        # output must lead to the model's output, or Keras drops the layer and its loss.
        targets = keras.ops.softmax(keras.ops.stop_gradient(logits))
        logits = ns3l.NS3L(weight=weight, threshold=threshold)(net(inputs), targets=targets)
    elif with_ns3l:
        logits = ns3l.NS3L(weight=weight, threshold=threshold)(logits)
    return keras.Model(inputs, logits)


def batches(images, labels, split, seed: int) -> tf.data.Dataset:
    """Infinite (x, y, sample_weight): 32 labeled rows (weight 1), then 32 unlabeled (weight 0)."""

    def stream(indices, weight, shuffle_seed):
        data = (images[indices], labels[indices], np.full(len(indices), weight, np.float32))
        rows = tf.data.Dataset.from_tensor_slices(data).repeat()
        return rows.shuffle(len(indices), seed=shuffle_seed).batch(32)

    pairs = tf.data.Dataset.zip(
        stream(split.labeled, 1.0, seed), stream(split.unlabeled, 0.0, seed)
    )
    return pairs.map(lambda a, b: tuple(tf.concat([u, v], 0) for u, v in zip(a, b, strict=True)))


def train_and_test(args: argparse.Namespace, seed: int, with_ns3l: bool) -> float:
    data = load_digits(size=16, channels=1)
    split = oliver_pt_split(data.train_labels, 10, args.n_labeled, n_valid=0, seed=seed)
    keras.utils.set_random_seed(seed)  # same initial weights and augmentation for both runs
    model = build_model(with_ns3l, args.weight, args.threshold, args.two_views)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        batches(data.train_images, data.train_labels, split, seed),
        steps_per_epoch=args.steps,
        epochs=1,
        verbose=0,
    )
    predictions = model.predict(data.test_images, verbose=0).argmax(axis=1)
    return 100.0 * float(np.mean(predictions != data.test_labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n_labeled", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weight", type=float, default=1.0, help="λ1")
    parser.add_argument("--threshold", type=float, default=0.04, help="T")
    parser.add_argument("--two_views", action="store_true")
    args = parser.parse_args()
    errors = {name: [] for name in ("supervised", "supervised + NS3L")}
    for seed in range(1, args.seeds + 1):
        errors["supervised"].append(train_and_test(args, seed, with_ns3l=False))
        errors["supervised + NS3L"].append(train_and_test(args, seed, with_ns3l=True))
    print(f"digits, {args.n_labeled} labels, {args.steps} steps, seeds 1..{args.seeds}")
    for name, values in errors.items():
        seeds = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:>18}: test error {np.mean(values):5.2f} ± {np.std(values):.2f} %  ({seeds})")


if __name__ == "__main__":
    main()
