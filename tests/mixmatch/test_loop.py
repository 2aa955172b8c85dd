"""Whole MixMatch runs on the embedded digits set: both methods, resume after a kill, the split."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mixmatch import presets
from mixmatch.config import RunConfig
from mixmatch.data import prepare, train_batches
from mixmatch.loop import train
from ns3l.training.datasets import svhn_digit_to_mixmatch
from tests.ns3l.test_summaries import read_hparams, read_scalars


def tiny_config(method, logdir, iterations=4, **changes) -> RunConfig:
    # kimg counts 1,024 labeled images: at batch 256 one kimg is 4 iterations, so an evaluation
    # every 4 iterations and `iterations` in all.
    given = {"batch": 256, "train_kimg": iterations // 4, "report_kimg": 1, "filters": 4,
             "repeat": 1, "warmup_kimg": 2}  # fmt: skip
    settings = presets.resolve(method, "digits", given)
    return RunConfig(method=method, dataset="digits", seed=2, logdir=str(logdir),
                     settings=settings, **changes)  # fmt: skip


@pytest.mark.parametrize("method", presets.METHODS)
def test_both_methods_run_on_digits(method, tmp_path):
    result = train(tiny_config(method, tmp_path, iterations=8))
    assert result["finished"] and result["step"] == 8 and result["kimg"] == 2.0
    # As the original's summaries: after the first iteration, then every period from there.
    assert [h["step"] for h in result["history"]] == [1, 5]
    assert [h["kimg"] for h in result["history"]] == [0.25, 1.25]
    assert result["split_sizes"] == {"labeled": 50, "unlabeled": 1246, "valid": 1, "test": 500}
    errors = [h["test_error"] for h in result["history"]]
    assert result["metrics"]["median_test_error_last1"] == errors[-1]
    assert result["metrics"]["median_test_error_last20"] == pytest.approx(np.median(errors))
    assert ("ns3l_weight" in result["config"]) == (method == "mixmatch+ns3l")
    logged = read_scalars(tmp_path)
    terms = ["xe", "l2u", *(["ns3l"] if method == "mixmatch+ns3l" else [])]
    want = {"loss/total", "lr", "error/test", "error/valid", "error/train_labeled",
            *(f"{kind}/{t}" for t in terms for kind in ("loss", "loss_unweighted")),
            *(f"weight/{t}" for t in terms[1:])}  # fmt: skip
    want |= {"ns3l/negatives_per_row"} if method == "mixmatch+ns3l" else set()
    assert {tag for tag, _, _ in logged} == want  # the Oliver stack's names (tests/realistic_ssl)
    assert [step for tag, step, _ in logged if tag == "loss/total"] == list(range(1, 9))
    # λ_U ramps over warmup_kimg = 2 (8 iterations of 256): (step - 1) / 8 of w_match.
    l2u = [(step, value) for tag, step, value in logged if tag == "weight/l2u"]
    w_match = result["config"]["w_match"]
    assert l2u == [(s, pytest.approx(w_match * (s - 1) / 8)) for s in range(1, 9)]
    assert read_hparams(tmp_path)["method"] == method
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["rule"] == "mixmatch: create_split, seed 2" == result["split_rule"]
    assert len(split["labeled"]) == 50 and len(split["valid"]) == 1


def checkpoint_values(logdir) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(logdir / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in n]
    return {name: reader.get_tensor(name) for name in names}


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole = tiny_config("mixmatch+ns3l", tmp_path / "whole", iterations=8, deterministic=True)
    cut = tiny_config("mixmatch+ns3l", tmp_path / "cut", iterations=8, deterministic=True)
    train(whole)
    train(cut, stop_after=7)  # killed after iteration 7; its last checkpoint is 5
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["step"] == 5
    resumed = train(cut)
    uninterrupted = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert resumed["history"] == uninterrupted["history"]
    want, got = checkpoint_values(tmp_path / "whole"), checkpoint_values(tmp_path / "cut")
    assert want.keys() == got.keys() and len(want) > 20
    # The augmentation and MixUp streams continue where they stopped: equal states below.
    assert {"augment_rng/_state_var", "mixup_rng/_state_var"} <= {
        n.split("/.ATTR")[0] for n in want
    }
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_run_under_mirrored_strategy_on_two_devices(tmp_path):
    result = train(tiny_config("mixmatch+ns3l", tmp_path, iterations=4, strategy="mirrored"))
    assert result["finished"]


def test_batches_are_labeled_and_unlabeled_images_in_unit_range():
    data = prepare("digits", n_labeled=50, n_valid=1, seed=1)
    x, labels, u = next(iter(train_batches(data, 64, seed=1)))
    assert x.shape == u.shape == (64, 16, 16, 3) and labels.shape == (64,)
    assert float(tf.reduce_min(x)) >= -1.0 and float(tf.reduce_max(u)) <= 1.0
    assert set(labels.numpy()) <= set(range(10))
    assert set(data.split.labeled).isdisjoint(data.split.unlabeled)


def test_svhn_uses_the_original_class_order_on_mock_data(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with tfds.testing.mock_data(num_examples=300):
        data = prepare("svhn", n_labeled=40, n_valid=1, seed=1)
        raw = tfds.as_numpy(tfds.builder("svhn_cropped").as_dataset(split="test").batch(300))
        digits = next(iter(raw))["label"]
    np.testing.assert_array_equal(
        np.sort(data.test_labels), np.sort(svhn_digit_to_mixmatch(digits))
    )
    assert len(data.split.labeled) == 40 and len(data.split.valid) == 1
