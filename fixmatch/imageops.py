"""The image operations both strong augmentations draw from, on PIL images (spec fixmatch.md §3).

The original code runs them through PIL, and their definitions are PIL's: the 5×5 BLUR and 3×3
SMOOTH kernels with PIL's border rule, ImageEnhance's degenerate images, ImageOps' equalize and
autocontrast look-up tables, the six resampling filters of `rescale`, nearest-neighbour affine
sampling from pixel centres. No TF or Keras op computes those to the same uint8 (TF's resize
filters and its equalize differ), so these call Pillow; the tests pin each one's output on
hand-built images to its definition.

Parameters are the ops' own (a blend weight, an enhance factor, degrees, a shear, bits, a
threshold); ctaugment.py and randaugment.py map their levels onto them.
"""

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

# ctaugment.py:166-173's filters in its order (PIL's ANTIALIAS is today's LANCZOS).
RESAMPLE = (
    Image.Resampling.LANCZOS,
    Image.Resampling.BICUBIC,
    Image.Resampling.BILINEAR,
    Image.Resampling.BOX,
    Image.Resampling.HAMMING,
    Image.Resampling.NEAREST,
)


def blend(image: Image.Image, other: Image.Image, weight: float) -> Image.Image:
    """PIL's blend, image·(1 - weight) + other·weight, per pixel, clipped to uint8."""
    return Image.blend(image, other, weight)


def autocontrast(image: Image.Image) -> Image.Image:
    """Each channel stretched so its minimum becomes 0 and its maximum 255."""
    return ImageOps.autocontrast(image.convert("RGB")).convert(image.mode)


def equalize(image: Image.Image) -> Image.Image:
    """Each channel's histogram equalised (PIL's look-up table)."""
    return ImageOps.equalize(image.convert("RGB")).convert(image.mode)


def invert(image: Image.Image) -> Image.Image:
    return ImageOps.invert(image.convert("RGB")).convert(image.mode)


def posterize(image: Image.Image, bits: int) -> Image.Image:
    """Keeps the `bits` high bits of every channel."""
    return ImageOps.posterize(image.convert("RGB"), bits).convert(image.mode)


def solarize(image: Image.Image, threshold: int) -> Image.Image:
    """Inverts every channel value at or above `threshold`."""
    return ImageOps.solarize(image.convert("RGB"), threshold).convert(image.mode)


def blur(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.BLUR)


def smooth(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.SMOOTH)


ENHANCERS = {
    "brightness": ImageEnhance.Brightness,
    "color": ImageEnhance.Color,
    "contrast": ImageEnhance.Contrast,
    "sharpness": ImageEnhance.Sharpness,
}


def enhance(image: Image.Image, kind: str, factor: float) -> Image.Image:
    """ImageEnhance `kind` at `factor`: a blend with its degenerate image (black, gray, the mean
    gray, SMOOTH-filtered), 1 leaves the image unchanged."""
    return ENHANCERS[kind](image).enhance(factor)


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    """Counter-clockwise about the centre, nearest neighbour, uncovered pixels 0."""
    return image.rotate(degrees)


def affine(image: Image.Image, coefficients: tuple[float, ...]) -> Image.Image:
    """Output pixel (x, y) reads the input at (a·x + b·y + c, d·x + e·y + f) of pixel centres,
    nearest neighbour, uncovered pixels 0: shears about the top-left corner and shifts."""
    return image.transform(image.size, Image.Transform.AFFINE, coefficients)


def shear_x(image: Image.Image, shear: float) -> Image.Image:
    return affine(image, (1, shear, 0, 0, 1, 0))


def shear_y(image: Image.Image, shear: float) -> Image.Image:
    return affine(image, (1, 0, 0, shear, 1, 0))


def translate_x(image: Image.Image, pixels: float) -> Image.Image:
    return affine(image, (1, 0, pixels, 0, 1, 0))


def translate_y(image: Image.Image, pixels: float) -> Image.Image:
    return affine(image, (1, 0, 0, 0, 1, pixels))


def rescale(image: Image.Image, fraction: float, resample: int) -> Image.Image:
    """Crops `fraction` of the width and height off each side, resizes back with `resample`."""
    width, height = image.size
    box = (fraction * width, fraction * height, width * (1 - fraction), height * (1 - fraction))
    return image.crop(box).resize(image.size, resample)


def square_bounds(centre: int, side: int, size: int) -> tuple[int, int]:
    """[low, high) of a square's side centred at `centre`, clipped to [0, size): side//2 on each
    side of the centre, as both originals' cutouts compute it (so odd sides lose one pixel)."""
    return max(0, centre - side // 2), min(size, centre + side // 2)


def cutout_box(
    height: int, width: int, side: int, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a `side` square with its centre uniform over the pixels:
    the row drawn first, then the column (ctaugment.py:129-142; augmentations.py:66-121)."""
    row, column = rng.integers(0, height), rng.integers(0, width)
    return (*square_bounds(int(row), side, height), *square_bounds(int(column), side, width))


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image, np.uint8))
