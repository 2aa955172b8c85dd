"""The runnable examples, shrunk: what they print must come from code that does what they say."""

import importlib.util
from pathlib import Path

import numpy as np
import tensorflow as tf

import ns3l

EXAMPLES = Path(__file__).parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_ns3l_and_pseudo_labeling_find_the_same_boundary():
    toy = load("toy_1d")
    data = toy.sample(seed=0)
    supervised = toy.fit("supervised", *data, 1.0, 0.05, 300).numpy()
    with_ns3l = toy.fit("ns3l", *data, 1.0, 0.05, 300).numpy()
    with_pl = toy.fit("pseudo_label", *data, 1.0, 0.05, 300).numpy()
    assert -0.5 < -supervised[1] / supervised[0] < 0.0  # ŵ sits in the unlabeled-only gap
    np.testing.assert_allclose(with_ns3l, with_pl, rtol=1e-5)  # two classes: the same method
    assert not np.allclose(with_ns3l, supervised)  # the SSL term did act


def test_two_view_model_keeps_the_ns3l_layer_and_its_loss():
    example = load("keras_fit_digits")
    model = example.build_model(with_ns3l=True, weight=0.5, threshold=0.04, two_views=True)
    assert sum(isinstance(layer, ns3l.NS3L) for layer in model.layers) == 1
    x = tf.random.uniform((8, 16, 16, 1), maxval=255)
    model(x, training=True)
    assert len(model.losses) == 1 and float(model.losses[0]) >= 0.0
    plain = example.build_model(with_ns3l=False, weight=0.5, threshold=0.04, two_views=True)
    plain(x, training=True)
    assert plain.losses == []
