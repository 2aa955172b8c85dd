"""A worker process of tests/test_multi_worker.py: a few train steps of a small WRN on digits
under MultiWorkerMirroredStrategy ($TF_CONFIG), or, with --single, in one process; the chief (or
the single process) saves the weights to OUT.npz.

    python -m tests.ns3l.multi_worker_steps OUT [--single]

Augmentation off and sync BN on, so the steps do not depend on how the batch is split."""

import sys

import numpy as np
import tensorflow as tf

from ns3l.training.augment import Augmentation
from ns3l.training.distribute import distribute, is_chief, make_strategy
from ns3l.training.runs import compiled_steps
from realistic_ssl import presets
from realistic_ssl.data import prepare, train_batches
from realistic_ssl.step import RealisticSSLTrainer
from realistic_ssl.wrn import WideResNet

STEPS = 3


def weights_after_steps(strategy: tf.distribute.Strategy) -> list[np.ndarray]:
    data = prepare("digits", n_labeled=50, n_valid=200, seed=1)
    settings = presets.resolve("ns3l", "digits", {"ns3l_ramp": False})
    hparams = {k: s.value for k, s in settings.items()}
    with strategy.scope():
        model = WideResNet(10, augmentation=Augmentation(False, 0, 0.0), seed=1, depth=10,
                           width=1, synchronized_bn=True)  # fmt: skip
        model.build((None, 16, 16, 3))
        trainer = RealisticSSLTrainer(model, ("ns3l",), hparams, global_batch=100, seed=1)
    replicas = strategy.num_replicas_in_sync
    batches = train_batches(data, 100, seed=1, replicas=replicas)
    steps = compiled_steps(strategy, trainer.train_step)
    steps(iter(distribute(strategy, batches, 100)), STEPS, 1)
    return [w.numpy() for w in model.weights]


def main(out: str, single: bool) -> None:
    strategy = tf.distribute.get_strategy() if single else make_strategy("multi_worker")
    weights = weights_after_steps(strategy)
    if is_chief(strategy):
        np.savez(out, *weights)


if __name__ == "__main__":
    main(sys.argv[1], "--single" in sys.argv[2:])
