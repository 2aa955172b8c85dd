"""Each image op on hand-built 4×4 images against its definition (spec fixmatch.md §3.3-3.4):
numpy transcriptions of the formulas, or pixels worked out by hand."""

import math

import numpy as np
import pytest

from fixmatch import imageops as ops

# Distinct values per pixel and channel, 0 and 255 included.
IMAGE = np.stack(
    [
        np.array([[0, 10, 20, 30], [40, 50, 60, 70], [80, 90, 100, 110], [120, 130, 140, 255]]),
        np.array([[5, 5, 5, 5], [15, 25, 35, 45], [200, 210, 220, 230], [60, 61, 62, 63]]),
        np.arange(16).reshape(4, 4) * 17,
    ],
    axis=-1,
).astype(np.uint8)


def run(op, *args, image=IMAGE) -> np.ndarray:
    return np.asarray(op(ops.to_pil(image), *args))


def test_posterize_keeps_the_high_bits():
    for bits in range(1, 9):
        mask = (0xFF << (8 - bits)) & 0xFF
        np.testing.assert_array_equal(run(ops.posterize, bits), IMAGE & mask)
    assert run(ops.posterize, 1)[3, 3, 0] == 128 and run(ops.posterize, 2)[2, 1, 1] == 192


def test_solarize_inverts_values_at_or_above_the_threshold():
    for threshold in (0, 1, 100, 128, 255, 256):
        want = np.where(IMAGE >= threshold, 255 - IMAGE, IMAGE)
        np.testing.assert_array_equal(run(ops.solarize, threshold), want)
    assert run(ops.solarize, 100)[2, 2, 0] == 155 and run(ops.solarize, 100)[2, 1, 0] == 90


def test_invert():
    np.testing.assert_array_equal(run(ops.invert), 255 - IMAGE)


def numpy_autocontrast(image: np.ndarray) -> np.ndarray:
    out = np.empty_like(image)
    for c in range(image.shape[-1]):
        band = image[..., c].astype(np.float64)
        lo, hi = band.min(), band.max()
        if hi <= lo:
            out[..., c] = image[..., c]
            continue
        scale = 255.0 / (hi - lo)
        out[..., c] = np.clip((band * scale - lo * scale).astype(np.int64), 0, 255)
    return out


def test_autocontrast_stretches_each_channel_to_0_255():
    got = run(ops.autocontrast)
    np.testing.assert_array_equal(got, numpy_autocontrast(IMAGE))
    # Channel 1 spans 5..230: 5 -> 0, 230 -> 255, 25 -> int(20·255/225) = 22.
    assert (got[0, 0, 1], got[2, 3, 1], got[1, 1, 1]) == (0, 255, 22)
    flat = np.full((4, 4, 3), 77, np.uint8)
    np.testing.assert_array_equal(run(ops.autocontrast, image=flat), flat)


def numpy_equalize(image: np.ndarray) -> np.ndarray:
    """PIL's rule per channel: step = (pixels - count of the last used value) // 255; value i
    maps to (step // 2 + pixels below i) // step; identity when step is 0."""
    out = np.empty_like(image)
    for c in range(image.shape[-1]):
        band = image[..., c]
        histogram = np.bincount(band.ravel(), minlength=256)
        used = histogram[histogram > 0]
        step = (used.sum() - used[-1]) // 255
        if len(used) <= 1 or step == 0:
            out[..., c] = band
            continue
        below = np.concatenate([[0], np.cumsum(histogram)[:-1]])
        lut = (step // 2 + below) // step
        out[..., c] = np.clip(lut, 0, 255)[band]
    return out


def test_equalize_follows_pils_histogram_rule():
    # 16 pixels: step = 15 // 255 = 0 leaves any 4×4 image as it is.
    np.testing.assert_array_equal(run(ops.equalize), IMAGE)
    big = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    big[..., 2] //= 4  # a channel with a narrow histogram
    got = run(ops.equalize, image=big)
    np.testing.assert_array_equal(got, numpy_equalize(big))
    assert got[..., 2].max() > 200 >= big[..., 2].max()  # the narrow channel is spread


def test_blend_truncates_toward_zero():
    # in1 + w·(in2 - in1) in float32, then truncated: 10 + 0.5·(245 - 10) = 127.5 -> 127.
    image = ops.to_pil(IMAGE)
    inverted = ops.to_pil(255 - IMAGE)
    got = np.asarray(ops.blend(image, inverted, 0.5))
    assert got[0, 1, 0] == 127
    want = IMAGE + np.float32(0.5) * ((255 - IMAGE).astype(np.float32) - IMAGE)
    np.testing.assert_array_equal(got, want.astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(ops.blend(image, inverted, 0.0)), IMAGE)
    np.testing.assert_array_equal(np.asarray(ops.blend(image, inverted, 1.0)), 255 - IMAGE)


def numpy_blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
    d, x = degenerate.astype(np.float32), image.astype(np.float32)
    return np.clip(d + np.float32(factor) * (x - d), 0, 255).astype(np.uint8)


def luma(image: np.ndarray) -> np.ndarray:
    """PIL's RGB -> L: (19595 R + 38470 G + 7471 B + 2^15) >> 16."""
    r, g, b = (image[..., c].astype(np.int64) for c in range(3))
    return ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16).astype(np.uint8)


def numpy_filter3x3(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """PIL's 3×3 filter: interior pixels rounded (sum + 0.5), the border copied unchanged."""
    out = image.copy()
    x = image.astype(np.float64)
    h, w = image.shape[:2]
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            window = x[i - 1 : i + 2, j - 1 : j + 2]
            total = (window * kernel[..., None]).sum(axis=(0, 1)) / kernel.sum()
            out[i, j] = np.clip(np.floor(total + 0.5), 0, 255)
    return out


SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float64)


@pytest.mark.parametrize("factor", [0.1, 0.55, 1.0, 1.72, 2.0])
def test_enhancers_blend_with_their_degenerate_image(factor):
    zeros = np.zeros_like(IMAGE)
    np.testing.assert_array_equal(
        run(ops.enhance, "brightness", factor), numpy_blend(zeros, IMAGE, factor)
    )
    gray = np.repeat(luma(IMAGE)[..., None], 3, axis=-1)
    np.testing.assert_array_equal(
        run(ops.enhance, "color", factor), numpy_blend(gray, IMAGE, factor)
    )
    mean = np.full_like(IMAGE, int(luma(IMAGE).mean() + 0.5))
    np.testing.assert_array_equal(
        run(ops.enhance, "contrast", factor), numpy_blend(mean, IMAGE, factor)
    )
    smoothed = numpy_filter3x3(IMAGE, SMOOTH)
    np.testing.assert_array_equal(
        run(ops.enhance, "sharpness", factor), numpy_blend(smoothed, IMAGE, factor)
    )


def test_smooth_and_blur_are_pils_kernels():
    np.testing.assert_array_equal(run(ops.smooth), numpy_filter3x3(IMAGE, SMOOTH))
    # Pixel (1, 1) of channel 0: (0+10+20+40+5·50+60+80+90+100)/13 = 650/13 = 50.
    assert run(ops.smooth)[1, 1, 0] == 50
    # BLUR is 5×5 (a ring of ones, 16 in all): a 4×4 image has no interior, so it is unchanged;
    # on 6×6, pixel (2, 2) is the mean of the ring around it.
    np.testing.assert_array_equal(run(ops.blur), IMAGE)
    six = np.arange(36, dtype=np.uint8).reshape(6, 6)[..., None].repeat(3, -1) * 7
    ring = np.ones((5, 5))
    ring[1:4, 1:4] = 0
    got = run(ops.blur, image=six)
    x = six[..., 0].astype(np.float64)
    for i, j in ((2, 2), (2, 3), (3, 2), (3, 3)):
        want = np.floor((x[i - 2 : i + 3, j - 2 : j + 3] * ring).sum() / 16 + 0.5)
        assert got[i, j, 0] == want
    np.testing.assert_array_equal(got[0], six[0])  # the border rows stay


def affine_sources(shape, a, b, c, d, e, f) -> tuple[np.ndarray, np.ndarray]:
    """Where PIL's nearest-neighbour affine samples: the image of each output pixel's centre,
    (a(x+½) + b(y+½) + c, d(x+½) + e(y+½) + f)."""
    y, x = np.mgrid[: shape[0], : shape[1]] + 0.5
    return a * x + b * y + c, d * x + e * y + f


def numpy_affine(image: np.ndarray, *coefficients) -> np.ndarray:
    """Output (x, y) = input at the truncated source, 0 outside the image."""
    h, w = image.shape[:2]
    xin, yin = affine_sources(image.shape, *coefficients)
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    out = np.zeros_like(image)
    out[inside] = image[yin[inside].astype(int), xin[inside].astype(int)]
    return out


def off_edges(image: np.ndarray, *coefficients) -> bool:
    """No source within rounding of a pixel edge, where the order of PIL's float operations
    (not the definition) decides the pixel."""
    sources = np.stack(affine_sources(image.shape, *coefficients))
    return bool(np.abs(sources - np.round(sources)).min() > 1e-9)


def test_shear_x_by_hand():
    got = run(ops.shear_x, 0.3)
    # Pixel (x, y) reads x + ½ + 0.3(y + ½): rows 0-1 (offsets 0.65, 0.95) keep their pixels,
    # rows 2-3 (1.25, 1.55) move left by one and take 0 at the right edge.
    np.testing.assert_array_equal(got[:2], IMAGE[:2])
    np.testing.assert_array_equal(got[2:, :3], IMAGE[2:, 1:])
    np.testing.assert_array_equal(got[2:, 3], np.zeros((2, 3)))
    for shear in (-0.3, -0.12, 0.21):
        for op, coefficients in ((ops.shear_x, (1, shear, 0, 0, 1, 0)),
                                 (ops.shear_y, (1, 0, 0, shear, 1, 0))):  # fmt: skip
            assert off_edges(IMAGE, *coefficients)
            np.testing.assert_array_equal(run(op, shear), numpy_affine(IMAGE, *coefficients))


def test_translations_below_half_a_pixel_are_no_ops():
    for pixels in (-0.3, 0.0, 0.3):  # CTAugment's whole range (spec §3.3c)
        np.testing.assert_array_equal(run(ops.translate_x, pixels), IMAGE)
        np.testing.assert_array_equal(run(ops.translate_y, pixels), IMAGE)
    shifted = run(ops.translate_x, 1.0)
    np.testing.assert_array_equal(shifted[:, :3], IMAGE[:, 1:])
    np.testing.assert_array_equal(shifted[:, 3], np.zeros((4, 3)))
    np.testing.assert_array_equal(run(ops.translate_y, -2), numpy_affine(IMAGE, 1, 0, 0, 0, 1, -2))


def test_rotate_about_the_centre():
    np.testing.assert_array_equal(run(ops.rotate, 90), np.rot90(IMAGE))  # counter-clockwise
    np.testing.assert_array_equal(run(ops.rotate, 180), IMAGE[::-1, ::-1])
    for degrees in (-27, 13, 30, 71):
        t = -math.radians(degrees)
        cos, sin = round(math.cos(t), 15), round(math.sin(t), 15)
        c = cos * -2 + sin * -2 + 2  # the centre (2, 2) stays put
        f = -sin * -2 + cos * -2 + 2
        assert off_edges(IMAGE, cos, sin, c, -sin, cos, f)  # (45° is not: 2 - 4e-16 at (1, 1))
        want = numpy_affine(IMAGE, cos, sin, c, -sin, cos, f)
        np.testing.assert_array_equal(run(ops.rotate, degrees), want)


def test_rescale_crops_each_side_and_resizes_back():
    # A quarter off each side of 4×4 keeps the central 2×2; NEAREST doubles each pixel.
    got = run(ops.rescale, 0.25, ops.RESAMPLE[5])
    np.testing.assert_array_equal(got, IMAGE[1:3, 1:3].repeat(2, 0).repeat(2, 1))
    # Nothing cropped: every filter gives the image back.
    for resample in ops.RESAMPLE:
        np.testing.assert_array_equal(run(ops.rescale, 0.0, resample), IMAGE)


def test_cutout_box_is_side_halves_around_the_centre_clipped():
    assert ops.square_bounds(0, 16, 32) == (0, 8)
    assert ops.square_bounds(31, 16, 32) == (23, 32)
    assert ops.square_bounds(10, 16, 32) == (2, 18)
    assert ops.square_bounds(5, 3, 32) == (4, 6)  # an odd side loses a pixel: 3 // 2 each way
    rng = np.random.default_rng(7)
    row, column = np.random.default_rng(7).integers(0, 32), None
    top, bottom, left, right = ops.cutout_box(32, 32, 16, rng)
    column = np.random.default_rng(7)
    column.integers(0, 32)
    column = column.integers(0, 32)
    assert (top, bottom) == ops.square_bounds(int(row), 16, 32)
    assert (left, right) == ops.square_bounds(int(column), 16, 32)
