"""How MixMatch steps execute: XLA, mixed precision, several steps per call, profiling."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import mixmatch.loop
from mixmatch import presets
from mixmatch.config import RunConfig
from mixmatch.data import prepare, train_batches
from mixmatch.loop import train
from ns3l.training import precision
from ns3l.training.runs import compiled_step
from tests.mixmatch.test_loop import checkpoint_values, tiny_config


def two_iterations(method: str, xla: bool = False, policy: str = "float32"):
    """Two iterations of a small ResNet on digits (augmented by crops only, whose integer draws
    XLA makes as TensorFlow does), at λ_U's full weight: the losses of both."""
    data = prepare("digits", n_labeled=50, n_valid=1, seed=1)
    settings = presets.resolve(method, "digits", {"filters": 8, "repeat": 1})
    config = RunConfig(method=method, dataset="digits", seed=1, logdir="", settings=settings,
                       xla=xla)  # fmt: skip
    keras.utils.set_random_seed(1)
    with precision.policy_scope(policy):
        trainer = mixmatch.loop.build_trainer(config, data)
    trainer.optimizer.iterations.assign(20_000)  # past the 16,384 iterations of the ramp
    step = compiled_step(tf.distribute.get_strategy(), trainer.train_step)
    batches = iter(train_batches(data, 64, seed=1))
    return [{k: float(v) for k, v in step(next(batches)).items()} for _ in range(2)]


@pytest.mark.parametrize(
    "method", [pytest.param("mixmatch", marks=pytest.mark.slow), "mixmatch+ns3l"]
)
def test_the_xla_step_computes_the_plain_step(method):
    plain, xla = two_iterations(method), two_iterations(method, xla=True)
    assert set(plain[0]) >= {"xe", "l2u", "total"} and plain[1]["l2u"] > 0
    for got, want in zip(xla, plain, strict=True):
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=2e-4, err_msg=name)


def test_a_bfloat16_iteration_stays_near_the_float32_iteration():
    full = two_iterations("mixmatch+ns3l")
    mixed = two_iterations("mixmatch+ns3l", policy="mixed_bfloat16")
    for got, want in zip(mixed, full, strict=True):
        for name in ("xe", "l2u", "ns3l"):  # 8 bits of mantissa in the layers: about 1 %
            np.testing.assert_allclose(got[name], want[name], rtol=0.05, err_msg=name)


def test_steps_per_call_and_a_profile_leave_a_run_bitwise_unchanged(tmp_path):
    plain = tiny_config("mixmatch+ns3l", tmp_path / "plain", iterations=8, deterministic=True)
    batched = tiny_config("mixmatch+ns3l", tmp_path / "batched", iterations=8,
                          deterministic=True, steps_per_call=3, profile_step=6)  # fmt: skip
    train(plain)
    result = train(batched)  # calls 1-3, 4, 5, 6 (profiled), 7-8: evaluations at 4 and 8
    assert result["precision"] == "float32"
    assert result["history"] == json.loads((tmp_path / "plain/results.json").read_text())["history"]
    want, got = checkpoint_values(tmp_path / "plain"), checkpoint_values(tmp_path / "batched")
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert len(list((tmp_path / "batched/plugins/profile").glob("*/*.xplane.pb"))) == 1


def test_a_mixed_precision_run_under_xla(tmp_path):
    result = train(tiny_config("mixmatch+ns3l", tmp_path, iterations=4, mixed_precision=True,
                               xla=True))  # fmt: skip
    assert result["finished"] and result["precision"] == "mixed_bfloat16"
    assert np.isfinite(result["metrics"]["median_test_error_last1"])
