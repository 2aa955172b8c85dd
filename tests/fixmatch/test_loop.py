"""Whole FixMatch runs on the embedded digits set: both methods and both strong augmentations,
the tags, the split, and a killed run that resumes (CTAugment's rates included) bit for bit."""

import json

import numpy as np
import pytest

from fixmatch import presets
from fixmatch.config import RunConfig
from fixmatch.loop import train
from tests.mixmatch.test_loop import checkpoint_values
from tests.ns3l.test_summaries import read_hparams, read_scalars


def tiny_config(method, logdir, iterations=16, augment="ctaugment", **changes) -> RunConfig:
    # batch 128: one kimg is 8 iterations, so an evaluation every 8 (at 1, 9, ...).
    given = {"batch": 128, "uratio": 2, "train_kimg": iterations // 8, "report_kimg": 1,
             "filters": 4, "repeat": 1, "bn_momentum": 0.9, "ema": 0.9, "lr": 0.1,
             "augment": augment}  # fmt: skip
    settings = presets.resolve(method, "digits", given)
    return RunConfig(method=method, dataset="digits", seed=2, logdir=str(logdir),
                     settings=settings, **changes)  # fmt: skip


@pytest.mark.parametrize(
    ("method", "augment"),
    [("fixmatch", "ctaugment"), ("fixmatch+ns3l", "ctaugment"), ("fixmatch", "randaugment")],
)
def test_both_methods_run_on_digits(method, augment, tmp_path):
    result = train(tiny_config(method, tmp_path, augment=augment))
    assert result["finished"] and result["step"] == 16 and result["stack"] == "fixmatch"
    assert [h["step"] for h in result["history"]] == [1, 9]
    # FixMatch's pool holds every train image: 1,297 less the one validation image.
    assert result["split_sizes"] == {"labeled": 50, "unlabeled": 1296, "valid": 1, "test": 500}
    errors = [h["test_error"] for h in result["history"]]
    assert result["metrics"]["median_test_error_last20"] == pytest.approx(np.median(errors))
    assert all(0 <= h["raw_test_error"] <= 100 for h in result["history"])
    terms = ["xe", "xeu", "wd", *(["ns3l"] if method == "fixmatch+ns3l" else [])]
    want = {"loss/total", "lr", "fixmatch/mask", "error/test", "error/valid",
            "error/train_labeled", "error/raw_test",
            *(f"{kind}/{t}" for t in terms for kind in ("loss", "loss_unweighted")),
            *(f"weight/{t}" for t in terms[1:])}  # fmt: skip
    if method == "fixmatch+ns3l":
        want |= {f"ns3l/{k}" for k in ("negatives_per_row", "rows_with_negatives",
                                       "true_class_among_negatives")}  # fmt: skip
    logged = read_scalars(tmp_path)
    assert {tag for tag, _, _ in logged} == want
    # The lr of the cosine at the next iteration: 0.1·cos(7π·s/(16·16)) after step s.
    lrs = [(step, value) for tag, step, value in logged if tag == "lr"]
    assert lrs[-1] == (16, pytest.approx(0.1 * np.cos(7 * np.pi * 16 / 256)))
    # wd·Σ½||W||² against its unweighted value, at every logged step.
    by_tag = {(tag, step): value for tag, step, value in logged}
    for step in range(1, 17):
        assert by_tag[("loss/wd", step)] == pytest.approx(
            5e-4 * by_tag[("loss_unweighted/wd", step)]
        )
    assert read_hparams(tmp_path)["augment"] == augment
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["rule"] == "fixmatch: create_split, seed 2, unlabeled = every train image"
    assert "(labeled ones included)" in split["unlabeled"]


@pytest.mark.parametrize(
    ("method", "augment"), [("fixmatch+ns3l", "ctaugment"), ("fixmatch", "randaugment")]
)
def test_a_killed_run_resumes_to_the_uninterrupted_result(method, augment, tmp_path):
    options = dict(iterations=24, augment=augment, deterministic=True)
    whole = tiny_config(method, tmp_path / "whole", **options)
    cut = tiny_config(method, tmp_path / "cut", **options)
    train(whole)
    train(cut, stop_after=14)  # killed after iteration 14; its last checkpoint is 9
    assert json.loads((tmp_path / "cut" / "results.json").read_text())["step"] == 9
    resumed = train(cut)
    uninterrupted = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert resumed["history"] == uninterrupted["history"]
    want, got = checkpoint_values(tmp_path / "whole"), checkpoint_values(tmp_path / "cut")
    assert want.keys() == got.keys() and len(want) > 20
    rates = [name for name in want if name.startswith("cta_rates/values")]
    if augment == "ctaugment":
        assert rates and not np.all(want[rates[0]] == 1.0)  # the probes moved the rates
    else:
        assert not rates  # RandAugment has no state
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_run_under_mirrored_strategy_on_two_devices(tmp_path):
    result = train(tiny_config("fixmatch+ns3l", tmp_path, iterations=8, strategy="mirrored"))
    assert result["finished"] and result["step"] == 8
