import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.checkpoints import RunCheckpoint, check_config
from ns3l.training.distribute import make_strategy

CONFIG = {"method": "mixmatch", "lr": 0.003, "wd": 0.02, "report_every": 1024, "scales": [3, 4]}


def tiny_model(seed):
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, "relu", kernel_initializer=init(seed), bias_initializer="ones"),
            keras.layers.Dense(2, kernel_initializer=init(seed + 1)),
        ]
    )


class Run:
    """What a stack checkpoints: model, EMA weights, Adam, augmentation random state."""

    def __init__(self, seed, build_optimizer=True):
        self.model = tiny_model(seed)
        self.ema = [tf.Variable(tf.zeros(w.shape)) for w in self.model.trainable_variables]
        self.optimizer = keras.optimizers.Adam(learning_rate=0.01)
        if build_optimizer:
            self.optimizer.build(self.model.trainable_variables)
        self.generator = tf.random.Generator.from_seed(seed)
        self.step = tf.function(self._step)

    def trackables(self):
        return {
            "model": self.model,
            "ema": self.ema,
            "optimizer": self.optimizer,
            "generator": self.generator,
        }

    def _step(self):
        # The data is a function of the step, as the resumable input streams make it.
        t = tf.cast(self.optimizer.iterations, tf.float32)
        x = tf.reshape(tf.range(12.0), (4, 3)) / 12.0 + t / 10.0
        x += 0.1 * self.generator.normal((4, 3))  # augmentation noise: needs the random state
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((self.model(x, training=True) - tf.sin(3.0 * x[:, :2])) ** 2)
        variables = self.model.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        for shadow, weight in zip(self.ema, variables, strict=True):
            shadow.assign(0.9 * shadow + 0.1 * weight)

    def state(self):
        return {
            "weights": [w.numpy() for w in self.model.weights],
            "ema": [w.numpy() for w in self.ema],
            "optimizer": [v.numpy() for v in self.optimizer.variables],
        }


def assert_same_state(got, want):
    assert got.keys() == want.keys()
    for key in want:
        for a, b in zip(got[key], want[key], strict=True):
            np.testing.assert_array_equal(a, b)


def test_restore_into_fresh_objects_is_exact(tmp_path):
    run = Run(seed=1)
    for _ in range(3):
        run.step()
    saved = RunCheckpoint(tmp_path, CONFIG, **run.trackables())
    saved.save(int(run.optimizer.iterations))
    next_numbers = run.generator.normal((5,)).numpy()
    want = run.state()

    fresh = Run(seed=7)
    assert not np.array_equal(fresh.state()["weights"][0], want["weights"][0])
    restored = RunCheckpoint(tmp_path, CONFIG, **fresh.trackables())
    assert restored.restore_latest() == 3
    assert_same_state(fresh.state(), want)
    assert int(fresh.optimizer.iterations) == 3
    assert len(want["optimizer"]) == 2 + 2 * 4  # iterations, lr, and m, v for 4 variables
    np.testing.assert_array_equal(fresh.generator.normal((5,)).numpy(), next_numbers)


def test_interrupted_and_resumed_training_is_bitwise_the_uninterrupted_one(tmp_path):
    uninterrupted = Run(seed=1)
    for _ in range(6):
        uninterrupted.step()

    first = Run(seed=1)
    checkpoint = RunCheckpoint(tmp_path, CONFIG, **first.trackables())
    for _ in range(4):
        first.step()
    checkpoint.save(4)
    first.step()  # lost in the interruption: the resume redoes step 5 from ckpt-4

    second = Run(seed=2)
    step = RunCheckpoint(tmp_path, CONFIG, **second.trackables()).restore_latest()
    for _ in range(step, 6):
        second.step()
    assert_same_state(second.state(), uninterrupted.state())
    assert int(second.optimizer.iterations) == 6


def test_restore_under_mirrored_strategy_fills_every_replica(tmp_path):
    model = tiny_model(seed=1)
    RunCheckpoint(tmp_path, CONFIG, model=model).save(10)
    strategy = make_strategy("mirrored")
    with strategy.scope():
        mirrored = tiny_model(seed=5)
    assert RunCheckpoint(tmp_path, CONFIG, model=mirrored).restore_latest() == 10
    for want, variable in zip(model.weights, mirrored.weights, strict=True):
        replicas = strategy.experimental_local_results(variable.value)
        assert len(replicas) == 2
        for replica in replicas:
            np.testing.assert_array_equal(replica.numpy(), want.numpy())


def test_an_unbuilt_optimizer_is_refused_with_a_hint(tmp_path):
    run = Run(seed=1)
    run.step()
    RunCheckpoint(tmp_path, CONFIG, **run.trackables()).save(1)
    lazy = Run(seed=2, build_optimizer=False)
    with pytest.raises(AssertionError) as error:
        RunCheckpoint(tmp_path, CONFIG, **lazy.trackables()).restore_latest()
    assert "optimizer.build(model.trainable_variables)" in "".join(error.value.__notes__)


def test_fresh_logdir_restores_nothing_and_records_the_config(tmp_path):
    logdir = tmp_path / "runs" / "x"
    checkpoint = RunCheckpoint(logdir, CONFIG, model=tiny_model(seed=1))
    assert checkpoint.restore_latest() is None
    assert json.loads((logdir / "config.json").read_text()) == CONFIG
    assert sorted(p.name for p in logdir.iterdir()) == ["config.json"]


def test_keeps_the_last_max_to_keep_checkpoints(tmp_path):
    checkpoint = RunCheckpoint(tmp_path, CONFIG, max_to_keep=2, model=tiny_model(seed=1))
    for step in (1024, 2048, 3072):
        checkpoint.save(step)
    indexes = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index"))
    assert indexes == ["ckpt-2048.index", "ckpt-3072.index"]
    assert checkpoint.restore_latest() == 3072


def test_changed_config_is_refused_naming_both_values(tmp_path):
    logdir = tmp_path / "x"
    RunCheckpoint(logdir, CONFIG, model=tiny_model(seed=1))
    message = (
        f"{logdir} was started with lr=0.003, this command has lr=0.001; "
        "use a new --logdir or the original flags"
    )
    with pytest.raises(UsageError, match=f"^{re.escape(message)}$"):
        RunCheckpoint(logdir, CONFIG | {"lr": 0.001}, model=tiny_model(seed=1))


def test_every_differing_key_is_named_including_missing_ones(tmp_path):
    check_config(tmp_path, CONFIG)
    changed = {k: v for k, v in CONFIG.items() if k != "wd"} | {"method": "pi", "seed": 2}
    with pytest.raises(UsageError) as error:
        check_config(tmp_path, changed)
    assert str(error.value) == (
        f'{tmp_path} was started with method="mixmatch", seed unset, wd=0.02, this command has '
        'method="pi", seed=2, wd unset; use a new --logdir or the original flags'
    )


def test_mutable_keys_may_differ_and_the_first_config_is_kept(tmp_path):
    check_config(tmp_path, CONFIG)
    check_config(tmp_path, CONFIG | {"report_every": 64}, mutable_keys=["report_every"])
    with pytest.raises(UsageError, match="report_every=1024"):
        check_config(tmp_path, CONFIG | {"report_every": 64})
    assert json.loads((tmp_path / "config.json").read_text())["report_every"] == 1024


def test_a_tuple_equals_the_list_it_was_saved_as(tmp_path):
    check_config(tmp_path, CONFIG | {"lr": np.float64(0.003)})
    check_config(tmp_path, CONFIG | {"scales": (3, 4)})
