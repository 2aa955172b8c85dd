"""How steps execute: XLA, mixed precision, several steps per call and profiling change the speed
of a run, never its method."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from ns3l.errors import UsageError
from ns3l.training import precision
from ns3l.training.augment import Augmentation
from ns3l.training.runs import compiled_step
from realistic_ssl import presets
from realistic_ssl.data import prepare, train_batches
from realistic_ssl.loop import train
from realistic_ssl.methods import vat
from realistic_ssl.step import RealisticSSLTrainer
from realistic_ssl.wrn import WideResNet
from tests.realistic_ssl.test_loop import checkpoint_values, tiny_config

# Under XLA, float draws from a tf.random.Generator (uniform floats: flips; normals: noise and
# VAT's random direction) map the same random bits to other numbers of the same distribution;
# integer draws (crop offsets) and the generator's state are the same. So the steps below
# augment by crops only, and VAT's penalty is compared in size only.
DRAWS_NORMALS = ("vat", "vat+em", "vat+ns3l", "vat+pl")
FAST = ("mt+ns3l", "vat+ns3l")  # the default test run; the rest are marked slow
XLA_METHODS = [
    m if m in FAST else pytest.param(m, marks=pytest.mark.slow)
    for m in (*presets.PAPER_METHODS, "mt", "mt+ns3l")
]


def two_steps(method: str, jit_compile: bool, policy: str = "float32", **overrides):
    """Two steps of a WRN-10-1 on digits augmented by crops only: the losses of both steps and
    the weights after them. `overrides` replace hyperparameters."""
    data = prepare("digits", n_labeled=50, n_valid=200, seed=1)
    keras.utils.set_random_seed(3)
    hparams = {k: s.value for k, s in presets.resolve(method, "digits", {}).items()}
    hparams["warmup_steps"] = 1  # every term at full weight from the second step
    hparams |= overrides
    crops = Augmentation(flip=False, translate=2, noise_std=0.0)
    with precision.policy_scope(policy):
        models = [WideResNet(10, depth=10, width=1, augmentation=crops, seed=s)
                  for s in (3, 4)]  # fmt: skip
        for model in models:
            model.build((None, 16, 16, 3))
        models[1].set_weights(models[0].get_weights())
        trainer = RealisticSSLTrainer(
            models[0], tuple(method.split("+")), hparams, global_batch=100, seed=3,
            teacher=models[1], jit_compile=jit_compile,
        )  # fmt: skip
    step = compiled_step(tf.distribute.get_strategy(), trainer.train_step)
    batches = iter(train_batches(data, 100, seed=1, supervised=method == "supervised"))
    losses = [{k: float(v) for k, v in step(next(batches)).items()} for _ in range(2)]
    return losses, [w.numpy() for w in models[0].weights]


@pytest.mark.parametrize("method", XLA_METHODS)
def test_the_xla_step_computes_the_plain_step(method):
    plain, plain_weights = two_steps(method, jit_compile=False)
    xla, xla_weights = two_steps(method, jit_compile=True)
    terms = [name for name in plain[1] if "/" not in name]  # the weighted terms and the total
    assert len(terms) == len(method.split("+")) + 2 - (method == "supervised")  # + xe, total
    raw = [name for name in plain[1] if name.startswith("raw/")]  # each term, unweighted
    assert len(raw) == len(terms) - 1
    for got, want in zip(xla, plain, strict=True):
        assert got.keys() == want.keys()
        for name in terms if method not in DRAWS_NORMALS else ["xe"]:
            np.testing.assert_allclose(got[name], want[name], rtol=2e-4, atol=1e-6, err_msg=name)
    if method in DRAWS_NORMALS:  # another random direction: the same size of penalty
        np.testing.assert_allclose(xla[1]["vat"], plain[1]["vat"], rtol=0.5)
    else:  # an Adam step moves a weight by up to lr; most agree to a tenth of that
        lr = presets.resolve(method, "digits", {})["lr"].value
        pairs = zip(xla_weights, plain_weights, strict=True)
        difference = np.concatenate([np.ravel(got - want) for got, want in pairs])
        assert np.mean(np.abs(difference) < 0.1 * lr) > 0.95


def test_bfloat16_computes_the_layers_and_keeps_logits_losses_and_vat_in_float32():
    with precision.policy_scope("mixed_bfloat16"):
        model = WideResNet(10, depth=10, width=1, augmentation=Augmentation(True, 2, 0.15), seed=0)
        model.build((None, 16, 16, 3))
    assert model.compute_dtype == "bfloat16" and {w.dtype for w in model.weights} == {"float32"}
    x = tf.random.stateless_normal((8, 16, 16, 3), seed=(1, 2))
    logits = model(x, training=True)
    assert logits.dtype == tf.float32
    generator = tf.random.Generator.from_seed(0)
    r_adv = vat.adversarial_perturbation(model, x, logits, 6.0, 1e-6, generator)
    assert r_adv.dtype == tf.float32
    np.testing.assert_allclose(tf.norm(tf.reshape(r_adv, (8, -1)), axis=1), 6.0, rtol=1e-5)
    assert vat.consistency(model(x + r_adv, training=True), logits).dtype == tf.float32


def test_a_bfloat16_step_stays_near_the_float32_step():
    # T = 0.5 makes most classes negatives: at 0.04 the few negatives of an untrained net sit
    # near T, bfloat16's rounding moves some across it, and the small loss changes by 40 %.
    full, _ = two_steps("pi+ns3l", jit_compile=False, ns3l_threshold=0.5)
    mixed, _ = two_steps("pi+ns3l", jit_compile=False, policy="mixed_bfloat16", ns3l_threshold=0.5)
    for got, want in zip(mixed, full, strict=True):
        for name in ("xe", "pi", "ns3l"):  # bfloat16 keeps 8 bits of mantissa: about 1 %
            np.testing.assert_allclose(got[name], want[name], rtol=0.05, err_msg=name)


def test_steps_per_call_and_a_profile_leave_a_run_bitwise_unchanged(tmp_path):
    plain = tiny_config("vat+ns3l", tmp_path / "plain", steps=6, deterministic=True)
    batched = tiny_config("vat+ns3l", tmp_path / "batched", steps=6, deterministic=True,
                          steps_per_call=3, profile_step=3)  # fmt: skip
    train(plain)
    result = train(batched)  # calls of steps 1-2, 3 (profiled), 4, 5-6: evaluations at 2, 4, 6
    assert result["history"] == json.loads((tmp_path / "plain/results.json").read_text())["history"]
    want, got = checkpoint_values(tmp_path / "plain"), checkpoint_values(tmp_path / "batched")
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert len(list((tmp_path / "batched/plugins/profile").glob("*/*.xplane.pb"))) == 1


def test_a_mixed_precision_run_records_its_policy_and_resumes_only_with_it(tmp_path):
    result = train(tiny_config("ns3l", tmp_path, mixed_precision=True), stop_after=2)
    assert result["step"] == 2 and result["precision"] == "mixed_bfloat16"
    assert np.isfinite(result["history"][0]["test_error"])
    assert keras.mixed_precision.global_policy().name == "float32"  # the run put it back
    with pytest.raises(UsageError, match='precision="mixed_bfloat16", this command has .*float32'):
        train(tiny_config("ns3l", tmp_path))
    resumed = train(tiny_config("ns3l", tmp_path, mixed_precision=True, xla=True))
    assert resumed["finished"] and resumed["config"]["xla"]  # XLA may change on resumption


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_a_float16_run_scales_its_loss(tmp_path, monkeypatch, strategy):
    """What --mixed_precision does on a GPU, forced here on the CPU (float16 kernels exist)."""
    monkeypatch.setattr(precision, "policy_name", lambda mixed: "mixed_float16")
    config = tiny_config("vat+ns3l", tmp_path, steps=2, mixed_precision=True, strategy=strategy)
    result = train(config)
    assert result["finished"] and result["precision"] == "mixed_float16"
    assert np.isfinite(result["history"][-1]["test_error"])
    saved = checkpoint_values(tmp_path)
    scale = saved["optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE"]  # checkpointed with the run
    applied = saved["optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]
    skipped = np.log2(2.0**15 / scale)  # each overflowing step halves the scale from 2^15
    assert applied + skipped == 2 and applied >= 1  # every step applied, or skipped and counted
