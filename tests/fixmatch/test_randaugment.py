"""RandAugment of the paper's RA rows (spec fixmatch.md §3.4-3.5): the level mappings of both
range variants, the policy sampler's distribution, the 0.5 application, the RGBA round trip and
the zero cutout."""

import numpy as np
import pytest

from fixmatch import imageops as ops
from fixmatch import randaugment as ra
from tests.fixmatch.test_ctaugment import unit
from tests.fixmatch.test_imageops import IMAGE

RGBA = ops.to_pil(IMAGE).convert("RGBA")


def run(ranges: str, name: str, level: int, seed: int = 1) -> np.ndarray:
    return np.asarray(ra.OPS[ranges][name](RGBA, level, np.random.default_rng(seed)))


def test_fourteen_ops_in_the_originals_order():
    assert len(ra.NAMES) == 14 and ra.NAMES[:3] == ("Identity", "AutoContrast", "Equalize")
    assert set(ra.OPS["code"]) == set(ra.OPS["paper"]) == set(ra.NAMES)


def test_code_levels_by_hand():
    bits = [4 - ra.int_parameter(level, 4) for level in range(1, 10)]
    assert bits == [4, 4, 3, 3, 2, 2, 2, 1, 1]
    assert [256 - ra.int_parameter(level, 256) for level in (1, 5, 9)] == [231, 128, 26]
    assert [ra.float_parameter(level, 1.8) + 0.1 for level in (1, 9)] == pytest.approx([0.28, 1.72])
    assert [ra.int_parameter(level, 30) for level in (1, 9)] == [3, 27]
    assert [ra.int_parameter(level, 10) for level in (1, 9)] == [1, 9]  # pixels, any image size


@pytest.mark.parametrize("level", [1, 5, 9])
def test_code_ops_apply_their_mapped_parameters(level):
    rgb = RGBA
    np.testing.assert_array_equal(
        run("code", "Posterize", level), np.asarray(ops.posterize(rgb, 4 - int(level * 0.4)))
    )
    np.testing.assert_array_equal(
        run("code", "Solarize", level),
        np.asarray(ops.solarize(rgb, 256 - ra.int_parameter(level, 256))),
    )
    for kind, name in (("brightness", "Brightness"), ("color", "Color"),
                       ("contrast", "Contrast"), ("sharpness", "Sharpness")):  # fmt: skip
        want = ops.enhance(rgb, kind, level * 1.8 / 10 + 0.1)
        np.testing.assert_array_equal(run("code", name, level), np.asarray(want))
    # The sign comes from the op's first draw: -value when it exceeds 0.5.
    sign = -1 if np.random.default_rng(1).random() > 0.5 else 1
    np.testing.assert_array_equal(
        run("code", "Rotate", level), np.asarray(ops.rotate(rgb, sign * int(level * 3)))
    )
    np.testing.assert_array_equal(
        run("code", "ShearX", level), np.asarray(ops.shear_x(rgb, sign * level * 0.03))
    )
    np.testing.assert_array_equal(
        run("code", "TranslateY", level), np.asarray(ops.translate_y(rgb, sign * level))
    )
    np.testing.assert_array_equal(run("code", "Identity", level), np.asarray(rgb))


@pytest.mark.parametrize("level", [1, 5, 9])
def test_paper_ranges(level):
    rgb = RGBA
    for kind, name in (("brightness", "Brightness"), ("sharpness", "Sharpness")):
        want = ops.enhance(rgb, kind, 0.05 + 0.09 * level)  # in [0.05, 0.95]
        np.testing.assert_array_equal(run("paper", name, level), np.asarray(want))
    np.testing.assert_array_equal(
        run("paper", "Posterize", level), np.asarray(ops.posterize(rgb, 4 + int(level * 0.4)))
    )
    sign = -1 if np.random.default_rng(1).random() > 0.5 else 1
    pixels = int(level * 0.03 * 4)  # 30 % of the 4-pixel side at level 10
    np.testing.assert_array_equal(
        run("paper", "TranslateX", level), np.asarray(ops.translate_x(rgb, sign * pixels))
    )
    np.testing.assert_array_equal(run("paper", "Rotate", level), run("code", "Rotate", level))


def test_policies_draw_names_uniformly_and_levels_in_1_to_9():
    rng = np.random.default_rng(4)
    draws = [step for _ in range(7000) for step in ra.policy(rng)]
    assert {p for _, p, _ in draws} == {0.5}
    names = np.array([ra.NAMES.index(name) for name, _, _ in draws])
    levels = np.array([level for _, _, level in draws])
    assert levels.min() == 1 and levels.max() == 9
    for values, k in ((names, 14), (levels - 1, 9)):
        counts = np.bincount(values, minlength=k)
        expected = len(values) / k
        assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)


def test_each_op_is_applied_with_its_probability():
    image = unit(IMAGE)
    # Solarize at level 9 (threshold 26) changes this image whenever it is applied.
    steps = [("Solarize", 0.5, 9)]
    rng = np.random.default_rng(8)
    plain = ra.apply_policy(image, [], rng)
    changed = [not np.array_equal(ra.apply_policy(image, steps, rng), plain) for _ in range(2000)]
    assert abs(np.mean(changed) - 0.5) < 0.05
    always = [("Solarize", 1.0, 9)]
    assert not np.array_equal(ra.apply_policy(image, always, rng), ra.apply_policy(image, [], rng))


def test_the_rgba_round_trip_truncates_and_uncovered_pixels_come_back_gray():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
    wrapped = np.asarray(ra.to_rgba(unit(values)))
    lost = values[..., 0] - wrapped[..., 0]
    assert set(np.unique(lost)) == {0, 1} and int(lost.sum()) == 47
    assert wrapped[0, 1, 0] == 0 and wrapped[15, 15, 0] == 255 and (wrapped[..., 3] == 255).all()
    # Translate 9 px left on a 16-px image: the 9 right-hand columns are uncovered -> 0, not -1.
    shifted = ra.from_rgba(ops.translate_x(ra.to_rgba(unit(values)), 9))
    np.testing.assert_array_equal(shifted[:, 7:], 0.0)
    np.testing.assert_allclose(shifted[:, :7], wrapped[:, 9:, :3] / 127.5 - 1)
    # AutoContrast goes through RGB, so it makes uncovered pixels opaque black again.
    black = ra.from_rgba(ops.autocontrast(ops.translate_x(ra.to_rgba(unit(values)), 9)))
    np.testing.assert_array_equal(black[:, 7:], -1.0)


def test_the_cutout_zeroes_a_16_pixel_square():
    image = np.full((32, 32, 3), 0.5)
    got = ra.cutout(image, np.random.default_rng(6))
    row, column = np.random.default_rng(6).integers(0, 32, 2)
    top, bottom = ops.square_bounds(int(row), 16, 32)
    left, right = ops.square_bounds(int(column), 16, 32)
    assert (got[top:bottom, left:right] == 0).all()
    assert (got == 0).all(axis=-1).sum() == (bottom - top) * (right - left) >= 64
    stl = ra.cutout(np.full((96, 96, 3), 0.5), np.random.default_rng(0))
    assert (stl == 0).all(axis=-1).sum() <= 16 * 16  # 16 px on STL-10 too (spec §3.4 step 4)


def test_a_strong_view_is_a_policy_then_the_cutout():
    image = unit(np.random.default_rng(2).integers(0, 256, (32, 32, 3)).astype(np.uint8))
    got = ra.strong(image, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    want = ra.cutout(ra.apply_policy(image, ra.policy(rng), rng), rng)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert got.dtype == np.float32 and got.shape == image.shape
