"""CTAugment (spec fixmatch.md §3.3): each op's parameter mapping, the bin distribution, the
policy sampler's distribution, the rate update, the state, and the strong view."""

import numpy as np
import pytest

from fixmatch import ctaugment as cta
from fixmatch import imageops as ops
from tests.fixmatch.test_imageops import IMAGE

RNG = np.random.default_rng(0)
PIL_IMAGE = ops.to_pil(IMAGE)


def apply(name: str, *values) -> np.ndarray:
    return np.asarray(cta.OPS[name].apply(PIL_IMAGE, *values, np.random.default_rng(1)))


def same(name: str, values: tuple, op, *arguments) -> None:
    np.testing.assert_array_equal(apply(name, *values), np.asarray(op(PIL_IMAGE, *arguments)))


def test_nineteen_ops_with_their_bins():
    assert len(cta.NAMES) == 19
    assert (cta.NAMES[0], cta.NAMES[-1]) == ("autocontrast", "translate_y")
    bins = {name: op.bins for name, op in cta.OPS.items()}
    assert bins.pop("identity") == () and bins.pop("posterize") == (8,)
    assert bins.pop("rescale") == (17, 6)
    assert set(bins.values()) == {(17,)} and len(bins) == 16


@pytest.mark.parametrize("v", [0.0, 0.3, 0.5, 0.999])
def test_parameters_map_onto_the_ops_as_the_original_does(v):
    same("posterize", (v,), ops.posterize, 1 + int(v * 7.999))
    same("solarize", (v,), ops.solarize, int(v * 255.999))
    same("rotate", (v,), ops.rotate, int(np.round((2 * v - 1) * 45)))
    same("shear_x", (v,), ops.shear_x, (2 * v - 1) * 0.3)
    same("shear_y", (v,), ops.shear_y, (2 * v - 1) * 0.3)
    for kind in ("brightness", "color", "contrast", "sharpness"):
        same(kind, (v,), ops.enhance, kind, 0.1 + 1.9 * v)
    blended = {"autocontrast": ops.autocontrast, "equalize": ops.equalize,
               "invert": ops.invert, "blur": ops.blur, "smooth": ops.smooth}  # fmt: skip
    for name, op in blended.items():
        same(name, (v,), lambda image, op=op: ops.blend(image, op(image), v))
    for method in (0.0, 0.5, 0.999):
        same("rescale", (v, method), ops.rescale, 0.25 * v, ops.RESAMPLE[int(method * 5.99)])
    same("identity", (), lambda image: image)


def test_hand_values_of_the_mappings():
    assert [1 + int(v * 7.999) for v in (0.0, 0.124, 0.125, 0.999)] == [1, 1, 1, 8]
    np.testing.assert_array_equal(apply("posterize", 0.999), IMAGE)  # 8 bits: unchanged
    np.testing.assert_array_equal(apply("rotate", 0.5), IMAGE)  # 0 degrees
    np.testing.assert_array_equal(apply("invert", 1.0), 255 - IMAGE)
    np.testing.assert_array_equal(apply("rescale", 0.0, 0.3), IMAGE)  # nothing cropped
    for name in ("translate_x", "translate_y"):  # ±0.3 px: no-ops (spec §3.3c)
        for v in (0.0, 0.5, 0.999):
            np.testing.assert_array_equal(apply(name, v), IMAGE)


@pytest.mark.parametrize(("size", "v", "side"), [(32, 1.0, 16), (96, 1.0, 48), (32, 0.0, 0)])
def test_cutout_is_a_gray_square_of_the_level_side(size, v, side):
    """side 1 + int(0.499·v·size), laid as side//2 around the centre (1 px at v = 0 -> none)."""
    image = ops.to_pil(np.zeros((size, size, 3), np.uint8))
    rng = np.random.default_rng(3)
    got = np.asarray(cta.cutout(image, v, rng))
    row, column = np.random.default_rng(3).integers(0, size, 2)
    top, bottom = ops.square_bounds(int(row), 1 + int(v * size * 0.499), size)
    left, right = ops.square_bounds(int(column), 1 + int(v * size * 0.499), size)
    want = np.zeros_like(got)
    want[top:bottom, left:right] = 127
    np.testing.assert_array_equal(got, want)
    assert bottom - top <= side and (got == 127).sum() == 3 * (bottom - top) * (right - left)


def test_bin_probabilities_drop_bins_below_the_threshold():
    augment = cta.CTAugment()
    np.testing.assert_allclose(augment.probabilities(np.ones(17)), np.full(17, 1 / 17))
    rate = np.ones(17)
    rate[3] = 0.79  # (0.79 + 0.01) / 1.01 = 0.792 < 0.80: never drawn
    rate[5] = 0.80  # 0.81 / 1.01 = 0.802: drawn, with weight 0.802 against 1
    p = augment.probabilities(rate)
    assert p[3] == 0.0
    np.testing.assert_allclose(p[5] / p[0], 0.81 / 1.01)
    np.testing.assert_allclose(p.sum(), 1.0)
    # All rates at 0: (0 + 0.01) / 0.01 = 1 everywhere, uniform again (never all zero).
    np.testing.assert_allclose(augment.probabilities(np.zeros(8)), np.full(8, 1 / 8))


def test_training_policies_draw_ops_uniformly_and_bins_by_their_rates():
    augment = cta.CTAugment()
    augment.rates["rotate"][0][:] = 0.0  # only bins 8..16 of rotate may be drawn
    augment.rates["rotate"][0][8:] = 1.0
    rng = np.random.default_rng(11)
    names, rotate_bins = [], []
    for _ in range(4000):
        policy = augment.policy(rng)
        assert len(policy) == 2
        for name, values in policy:
            names.append(name)
            assert len(values) == len(cta.OPS[name].bins)
            assert all(0 <= v < 1 for v in values)
            if name == "rotate":
                rotate_bins.append(int(values[0] * 17))
    counts = np.array([names.count(name) for name in cta.NAMES])
    expected = len(names) / 19
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)  # uniform over the 19
    assert min(rotate_bins) == 8 and max(rotate_bins) == 16  # never a zeroed bin
    bins = np.bincount(rotate_bins, minlength=17)[8:]
    assert np.abs(bins - bins.mean()).max() < 5 * np.sqrt(bins.mean())  # uniform over 9


def test_probe_policies_are_uniform_in_the_unit_interval():
    augment = cta.CTAugment()
    for rates in augment.rates.values():  # rates do not steer probes
        for rate in rates:
            rate[:] = 0.0
    rng = np.random.default_rng(5)
    values = [v for _ in range(3000) for _, vs in augment.policy(rng, probe=True) for v in vs]
    histogram = np.histogram(values, bins=10, range=(0, 1))[0]
    assert np.abs(histogram - len(values) / 10).max() < 5 * np.sqrt(len(values) / 10)


def test_an_update_moves_the_bin_of_each_parameter_toward_the_proximity():
    augment = cta.CTAugment()
    augment.update([("rescale", (0.999, 1 / 6)), ("identity", ())], proximity=0.25)
    # bin int(v·n·0.999): 0.999·17·0.999 = 16.97 -> 16; (1/6)·6·0.999 = 0.999 -> 0.
    scale, method = augment.rates["rescale"]
    assert scale[16] == pytest.approx(0.99 + 0.01 * 0.25) and method[0] == pytest.approx(0.9925)
    assert (scale[:16] == 1).all() and (method[1:] == 1).all()
    augment.update([("rescale", (0.999, 1 / 6))], proximity=0.25)
    assert scale[16] == pytest.approx(0.9925 * 0.99 + 0.0025)
    assert sum(int((r != 1).sum()) for rates in augment.rates.values() for r in rates) == 2


def test_proximity_is_the_labels_probability():
    p = np.array([0.1, 0.7, 0.2])
    assert cta.proximity(p, 1) == pytest.approx(0.7)
    assert cta.proximity(p, 0) == pytest.approx(0.1)


def test_the_state_round_trips():
    augment = cta.CTAugment()
    augment.update(augment.policy(RNG, probe=True), 0.1)
    other = cta.CTAugment()
    other.load_state({k: v.copy() for k, v in augment.state().items()})
    # One vector per parameter: 17 ops with one, rescale with two, identity with none.
    assert len(augment.state()) == 19 and set(other.state()) == set(augment.state())
    for key, rate in augment.state().items():
        np.testing.assert_array_equal(other.state()[key], rate)


def unit(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)).astype(np.float32)


def test_the_float_round_trip_is_lossless():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
    np.testing.assert_array_equal(cta.to_uint8(unit(values)), values)
    back = cta.apply(unit(values), [("identity", ())], RNG)
    np.testing.assert_array_equal(back, values.astype(np.float32) / 127.5 - 1)


def test_a_strong_view_is_two_ops_then_the_gray_cutout():
    image = unit(np.random.default_rng(2).integers(0, 256, (32, 32, 3)).astype(np.uint8))
    augment = cta.CTAugment()
    got = cta.strong(image, augment, np.random.default_rng(9))
    # The same draws by hand: the policy, then its ops and the cutout.
    rng = np.random.default_rng(9)
    policy = augment.policy(rng)
    want = cta.apply(image, [*policy, cta.CUTOUT], rng)
    np.testing.assert_array_equal(got, want)
    gray = (np.array(127, np.float32) / 127.5 - 1).astype(np.float32)
    assert got.dtype == np.float32 and (got == gray).all(axis=-1).sum() >= 8 * 8
