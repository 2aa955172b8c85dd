"""Every random stream of both stacks, for seeds 1-5, is its own: no shared runs, no correlation.

The streams are drawn from the objects the stacks build (networks, trainers) and from the data
streams as `realistic_ssl/data.py` and `mixmatch/data.py` key them."""

import hashlib
import itertools

import numpy as np
import pytest
import tensorflow as tf

from mixmatch.step import MixMatchTrainer
from mixmatch.wrn import ResNet
from ns3l.training import seeds
from ns3l.training.augment import Augmentation
from ns3l.training.streams import index_batches
from realistic_ssl import presets
from realistic_ssl.step import RealisticSSLTrainer
from realistic_ssl.wrn import CIFAR_AUGMENTATION, WideResNet

DRAWS = 10_000
SEEDS = (1, 2, 3, 4, 5)


def first_kernel_values(model: tf.keras.Model) -> np.ndarray:
    """The first DRAWS initial weights of the model's kernels, in variable order."""
    values = np.concatenate([w.numpy().ravel() for w in model.weights if w.path.endswith("kernel")])
    return values[:DRAWS]


def order(seed: int, name: str, n: int = 1_047) -> np.ndarray:
    stream = index_batches(n, 100, seeds.stream_key(seed, name))
    return np.concatenate(list(stream.take(DRAWS // 100).as_numpy_iterator())).astype(np.float64)


def realistic_streams(seed: int) -> dict[str, np.ndarray]:
    student = WideResNet(10, augmentation=CIFAR_AUGMENTATION, seed=seed, depth=10, width=2)
    teacher = WideResNet(10, augmentation=CIFAR_AUGMENTATION, seed=seed, depth=10, width=2,
                         augment_stream="teacher_augment")  # fmt: skip
    student.build((None, 16, 16, 3)), teacher.build((None, 16, 16, 3))
    hparams = {k: s.value for k, s in presets.resolve("vat+ns3l", "digits", {}).items()}
    trainer = RealisticSSLTrainer(student, ("vat", "ns3l"), hparams, 100, seed=seed)
    return {
        "init": first_kernel_values(student),
        "augment": student.generator.uniform([DRAWS]).numpy(),
        "teacher_augment": teacher.generator.uniform([DRAWS]).numpy(),
        "vat": trainer.vat_rng.uniform([DRAWS]).numpy(),
        "labeled_order": order(seed, "labeled_order"),
        "unlabeled_order": order(seed, "unlabeled_order"),
    }


def mixmatch_streams(seed: int) -> dict[str, np.ndarray]:
    model, ema = ResNet(10, seed=seed, scales=2), ResNet(10, seed=seed, scales=2)
    model.build((None, 16, 16, 3)), ema.build((None, 16, 16, 3))
    hparams = {"lr": 0.002, "mixup_alpha": 0.75}
    trainer = MixMatchTrainer(model, ema, hparams, Augmentation(False, 2, 0.0), seed)
    return {
        "init": first_kernel_values(model),
        "augment": trainer.augment_rng.uniform([DRAWS]).numpy(),
        "mixup": trainer.mixup_rng.uniform([DRAWS]).numpy(),
        "labeled_order": order(seed, "labeled_order", 50),
        "unlabeled_order": order(seed, "unlabeled_order"),
    }


def shared_run(a: np.ndarray, b: np.ndarray, length: int = 8) -> bool:
    """Whether some `length` consecutive values of `a` appear consecutively in `b`."""
    grams = {a[i : i + length].tobytes() for i in range(len(a) - length + 1)}
    return any(b[i : i + length].tobytes() in grams for i in range(len(b) - length + 1))


@pytest.mark.parametrize("stack", [realistic_streams, mixmatch_streams])
def test_no_two_streams_of_seeds_1_to_5_share_values(stack):
    streams = {
        (seed, name): values.astype(np.float64)
        for seed in SEEDS
        for name, values in stack(seed).items()
    }
    assert all(len(values) == DRAWS for values in streams.values())
    for (key_a, a), (key_b, b) in itertools.combinations(streams.items(), 2):
        assert not shared_run(a, b), (key_a, key_b)
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.05, (key_a, key_b)


def test_from_seed_would_share_a_shifted_stream():
    # Why ns3l.training.seeds exists: Generator.from_seed(s) puts s into Philox's counter, so seed 2
    # draws seed 1's numbers four positions later; the keyed generators do not.
    one, two = (tf.random.Generator.from_seed(s).uniform([100]).numpy() for s in (1, 2))
    assert shared_run(one, two)
    one, two = (seeds.generator(s, "augment").uniform([100]).numpy() for s in (1, 2))
    assert not shared_run(one, two)


def test_the_stream_key_is_the_documented_hash():
    digest = hashlib.sha256(b"ns3l:3:augment").digest()
    assert seeds.stream_key(3, "augment") == int.from_bytes(digest[:8], "big") >> 1
    assert 0 <= seeds.stream_key(3, "augment") < 2**63
    assert seeds.generator(3, "augment").state.numpy().tolist() == [
        0, 0, seeds.stream_key(3, "augment"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="stream: expected a non-empty name"):
        seeds.stream_key(1, "")
