"""Whole runs on the embedded digits set: every paper method, resume after a kill, two replicas."""

import json
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training.distribute import make_strategy
from ns3l.training.runs import compiled_step
from realistic_ssl import presets
from realistic_ssl.config import RunConfig
from realistic_ssl.data import PreparedData, prepare, train_batches
from realistic_ssl.loop import train
from realistic_ssl.step import RealisticSSLTrainer
from tests.ns3l.test_summaries import read_hparams, read_scalars


def tiny_config(
    method: str, logdir, steps: int = 4, protocol: str = "pt", hparams=None, **fields
) -> RunConfig:
    """A WRN-10-1 run on digits, evaluated every 2 steps; `hparams` override settings, `fields`
    RunConfig fields. BN decay 0.9 in both protocols ([PT]'s value) for so short a run."""
    schedule = {"train_steps": steps, "eval_every": 2, "warmup_steps": 2, "lr_decay_steps": 3,
                "bn_momentum": 0.9} | (hparams or {})  # fmt: skip
    if method == "supervised":  # no consistency term, so no ramp-up to set
        schedule.pop("warmup_steps")
    settings = presets.resolve(method, "digits", schedule, protocol)
    fields = dict(wrn_depth=10, wrn_width=1) | fields
    return RunConfig(method=method, dataset="digits", seed=2, logdir=str(logdir), settings=settings,
                     protocol=protocol, **fields)  # fmt: skip


# Every paper method under [PT]; under [TF] the methods whose loss differs (spec §8).
RUNS = [(m, "pt") for m in presets.PAPER_METHODS] + [(m, "tf") for m in ("pl", "pi", "vat+em")]


@pytest.mark.parametrize(("method", "protocol"), RUNS)
def test_every_paper_method_runs_on_digits(method, protocol, tmp_path):
    result = train(tiny_config(method, tmp_path, protocol=protocol))
    assert result["finished"] and result["step"] == 4 and result["method"] == method
    assert [h["step"] for h in result["history"]] == [2, 4]
    unlabeled = 1097 if protocol == "tf" else 1047  # [TF]: the labeled images too
    sizes = {"labeled": 50, "unlabeled": unlabeled, "valid": 200, "test": 500}
    assert result["split_sizes"] == sizes and result["protocol"] == protocol
    metrics = result["metrics"]
    assert 0.0 <= metrics["test_error_at_best_valid"] <= 100.0
    best = min(result["history"], key=lambda h: h["valid_error"])
    assert metrics["test_error_at_best_valid"] == best["test_error"]
    assert metrics["best_step"] == best["step"]
    assert result["config"]["lr"] == presets.resolve(method, "digits", {})["lr"].value
    assert ("train_error" in result["history"][0]) == (protocol == "tf")
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["rule"].startswith(f"oliver-{protocol}:") and len(split["labeled"]) == 50
    assert split["rule"] == result["split_rule"]
    logged = read_scalars(tmp_path)
    terms = [] if method == "supervised" else method.split("+")
    want = {"loss/total", "loss/xe", "loss_unweighted/xe", "lr", "ramp", "error/valid",
            "error/test", *(f"{kind}/{t}" for t in terms for kind in ("loss", "loss_unweighted",
            "weight"))}  # fmt: skip
    want |= {"error/train"} if protocol == "tf" else set()
    want |= (
        {"ns3l/negatives_per_row", "ns3l/true_class_among_negatives_l"}
        if "ns3l" in terms
        else set()
    )
    assert {tag for tag, _, _ in logged} == want
    assert [step for tag, step, _ in logged if tag == "loss/total"] == [1, 2, 3, 4]  # every step
    hparams = read_hparams(tmp_path)
    assert (hparams["trial"], hparams["method"]) == (str(tmp_path), method)
    assert hparams["lr"] == result["config"]["lr"]
    written = json.loads((tmp_path / "results.json").read_text())["provenance"]
    assert written["versions"]["tensorflow"] == tf.__version__ and "CPU:0" in written["devices"]
    root = Path(__file__).parents[2]
    if (root / ".git").exists():  # a checkout: the commit that ran
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()  # fmt: skip
        assert written["git"]["commit"] == head


def checkpoint_values(logdir) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(logdir / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in n]
    return {name: reader.get_tensor(name) for name in names}


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole = tiny_config("vat+ns3l", tmp_path / "whole", steps=6, deterministic=True)
    cut = tiny_config("vat+ns3l", tmp_path / "cut", steps=6, deterministic=True)
    train(whole)
    train(cut, stop_after=5)  # killed after step 5; its last checkpoint is step 4
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["step"] == 4
    resumed = train(cut)
    uninterrupted = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert resumed["history"] == uninterrupted["history"]
    want, got = checkpoint_values(tmp_path / "whole"), checkpoint_values(tmp_path / "cut")
    assert want.keys() == got.keys() and len(want) > 50
    # The random streams (augmentation, VAT) continue where they stopped: equal states below.
    assert {"wrn/generator/_state_var", "vat_rng/_state_var"} <= {
        n.split("/.ATTR")[0] for n in want
    }
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_run_under_mirrored_strategy_on_two_devices(tmp_path):
    result = train(tiny_config("vat+ns3l", tmp_path, steps=2, strategy="mirrored"))
    assert result["finished"] and result["config"]["strategy"] == "mirrored"


def test_restarting_with_other_settings_is_refused(tmp_path):
    train(tiny_config("ns3l", tmp_path, steps=2))
    changed = tiny_config("ns3l", tmp_path, steps=2, wrn_width=2)
    with pytest.raises(
        UsageError, match="was started with wrn_width=1, this command has wrn_width=2"
    ):
        train(changed)


def test_batches_hold_labeled_then_unlabeled_rows_and_resume_by_step():
    data = prepare("digits", n_labeled=50, n_valid=200, seed=1)
    stream = iter(train_batches(data, 100, seed=1))
    batches = [next(stream) for _ in range(3)]
    x, y = batches[0]
    assert x.shape == (100, 16, 16, 3) and x.dtype == tf.float32
    assert np.all(y[:50].numpy() >= 0) and np.all(y[50:].numpy() == -1)
    assert -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0  # [-1, 1] scale
    resumed_x, resumed_y = next(iter(train_batches(data, 100, seed=1, start_step=2)))
    np.testing.assert_array_equal(resumed_x, batches[2][0])
    np.testing.assert_array_equal(resumed_y, batches[2][1])
    labeled_rows = {data.train_labels[i] for i in data.split.labeled}
    assert labeled_rows == set(range(10))


def test_two_replicas_each_get_half_labeled_rows():
    data = prepare("digits", n_labeled=50, n_valid=200, seed=1)
    _, y = next(iter(train_batches(data, 100, seed=1, replicas=2)))
    y = y.numpy()
    for chunk in (y[:50], y[50:]):
        assert np.all(chunk[:25] >= 0) and np.all(chunk[25:] == -1)
    with pytest.raises(UsageError, match="--batch_size=100: expected a multiple of 2 x 3 replicas"):
        train_batches(data, 100, seed=1, replicas=3)


class Linear(keras.Model):
    """No BN, no augmentation: one replica and two must then take the very same step."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(10)

    def call(self, x, training=False, update_bn_stats=True):
        return self.dense(tf.reshape(x, (tf.shape(x)[0], -1)))


def one_step(strategy, data: PreparedData, replicas: int):
    hparams = presets.resolve("ns3l", "digits", {"ns3l_ramp": False})
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = Linear()
        model(tf.zeros((1, 16, 16, 3)))
        values = {k: s.value for k, s in hparams.items()}
        trainer = RealisticSSLTrainer(model, ("ns3l",), values, global_batch=100, seed=0)
    batches = strategy.experimental_distribute_dataset(
        train_batches(data, 100, seed=1, replicas=replicas)
    )
    stats = compiled_step(strategy, trainer.train_step)(next(iter(batches)))
    return {k: float(v) for k, v in stats.items()}, [v.numpy() for v in model.weights]


def test_mirrored_step_equals_the_single_device_step():
    data = prepare("digits", n_labeled=50, n_valid=200, seed=1)
    single_stats, single_weights = one_step(tf.distribute.get_strategy(), data, 1)
    mirrored_stats, mirrored_weights = one_step(make_strategy("mirrored"), data, 2)
    assert single_stats["ns3l"] > 0
    for name, value in single_stats.items():
        np.testing.assert_allclose(mirrored_stats[name], value, rtol=1e-5, err_msg=name)
    for got, want in zip(mirrored_weights, single_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_the_cifar10_path_runs_on_mock_tfds_data(tmp_path, monkeypatch):
    """GCN + ZCA, the cache next to the data, and a run, on tfds.testing.mock_data images."""
    import tensorflow_datasets as tfds

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    settings = presets.resolve(
        "vat+ns3l", "cifar10",
        {"train_steps": 2, "eval_every": 2, "n_labeled": 20, "n_valid": 20},
    )  # fmt: skip
    config = RunConfig(method="vat+ns3l", dataset="cifar10", seed=1, logdir=str(tmp_path / "run"),
                       settings=settings, wrn_depth=10, wrn_width=1)  # fmt: skip
    with tfds.testing.mock_data(num_examples=120):
        result = train(config)
    assert result["finished"]
    assert result["split_sizes"] == {"labeled": 20, "unlabeled": 80, "valid": 20, "test": 120}
    assert len(list((tmp_path / "tfds" / "ns3l_cache").glob("zca-cifar10-*.npz"))) == 1


def wrn_step(strategy, data: PreparedData, replicas: int, synchronized_bn: bool):
    from ns3l.training.augment import Augmentation
    from realistic_ssl.wrn import WideResNet

    hparams = presets.resolve("ns3l", "digits", {"ns3l_ramp": False})
    with strategy.scope():
        none = Augmentation(flip=False, translate=0, noise_std=0.0)
        model = WideResNet(10, augmentation=none, seed=0, depth=10, width=1,
                           synchronized_bn=synchronized_bn)  # fmt: skip
        model.build((None, 16, 16, 3))
        values = {k: s.value for k, s in hparams.items()}
        trainer = RealisticSSLTrainer(model, ("ns3l",), values, global_batch=100, seed=0)
    batches = iter(strategy.experimental_distribute_dataset(
        train_batches(data, 100, seed=1, replicas=replicas)
    ))  # fmt: skip
    step = compiled_step(strategy, trainer.train_step)
    # Two steps: the losses of the second depend on the weights after the first, which alone are
    # little evidence (Adam's first step is about ±lr whatever the gradient's size).
    losses = [[float(s["xe"]), float(s["ns3l"])] for s in (step(next(batches)) for _ in "ab")]
    moving = [v.numpy() for v in model.non_trainable_weights if "moving" in v.path]
    return losses, moving, [v.numpy() for v in model.trainable_weights]


def test_synchronized_bn_makes_the_mirrored_step_equal_the_single_device_step():
    data = prepare("digits", n_labeled=50, n_valid=200, seed=1)
    single = wrn_step(tf.distribute.get_strategy(), data, 1, synchronized_bn=False)
    synced = wrn_step(make_strategy("mirrored"), data, 2, synchronized_bn=True)
    per_replica = wrn_step(make_strategy("mirrored"), data, 2, synchronized_bn=False)
    assert len(synced[1]) == len(single[1]) > 10  # moving mean and variance of every BN
    np.testing.assert_allclose(synced[0], single[0], rtol=1e-5)
    for got, want in zip(synced[1], single[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # The weights, within a tenth of one Adam step (lr 3e-3): a weight whose gradient is near 0
    # moves by lr·m/√v, which summation order can change by a few percent of a step.
    for got, want in zip(synced[2], single[2], strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-4)
    assert not np.allclose(per_replica[0], single[0], rtol=1e-5)  # per-replica BN differs


def test_the_console_says_where_a_run_resumed_and_what_it_finished_with(tmp_path, capsys):
    config = tiny_config("ns3l", tmp_path, steps=4)
    train(config, stop_after=2)
    first = capsys.readouterr().out
    assert "resumed" not in first and "finished:" not in first  # stopped at step 2 of 4
    record = train(config)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"resumed at step 3 of 4 from {tmp_path}/checkpoints"
    value = record["metrics"]["test_error_at_best_valid"]
    assert lines[-1] == f"finished: test_error_at_best_valid {value:.2f}, {tmp_path}/results.json"
    train(config)  # a rerun of the finished run
    assert capsys.readouterr().out == (
        f"already finished: test_error_at_best_valid {value:.2f}, {tmp_path}/results.json\n"
    )
