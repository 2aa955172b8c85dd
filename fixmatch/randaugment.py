"""RandAugment as the paper's "FixMatch (RA)" rows ran it (spec fixmatch.md §3.4): the released
ablation/ab_fixmatch_ra.py with `--augment=d.d.rac`, i.e. libml's AugmentPoolRAMC over the
third-party AutoAugment ops.

Per strong image: 2 op names drawn with replacement from 14, each with an integer level in 1..9
(of PARAMETER_MAX 10) and applied with probability 0.5, then a zero (mid-gray) 16-pixel cutout.
The levels map onto the code's ranges (`ranges="code"`, the default); `ranges="paper"` takes the
paper table's ranges instead (spec §3.5; the RA ports' choice), and `probability=1.0` the
maintainer's "applied 100% of the time" (fixmatch#65).

The image goes through PIL as RGBA: pixels that geometric ops leave uncovered get alpha 0 and
come back as 0 (gray), and the float -> uint8 conversion truncates, (x·0.5 + 0.5)·255, which
for x = v·2/255 - 1 takes one gray level off 47 of the 256 values (augmentations.py:152-165).
"""

from collections.abc import Callable

import numpy as np
from PIL import Image

from fixmatch import imageops as ops

PARAMETER_MAX = 10
NAMES = (
    "Identity",
    "AutoContrast",
    "Equalize",
    "Rotate",
    "Solarize",
    "Color",
    "Contrast",
    "Brightness",
    "Sharpness",
    "ShearX",
    "TranslateX",
    "TranslateY",
    "Posterize",
    "ShearY",
)  # fmt: skip  (augment.py:37-42, in its order)
CUTOUT_SIDE = 16  # cutout_numpy's default, on every data set (spec §3.4 step 4)


def float_parameter(level: int, maximum: float) -> float:
    return float(level) * maximum / PARAMETER_MAX


def int_parameter(level: int, maximum: float) -> int:
    return int(level * maximum / PARAMETER_MAX)


def _random_sign(value: float, rng: np.random.Generator) -> float:
    """-value with probability 0.5 (augmentations.py: `random.random() > 0.5`)."""
    return -value if rng.random() > 0.5 else value


# (image, level, rng) -> image for each range variant; the code's first (augmentations.py).
Transform = Callable[[Image.Image, int, np.random.Generator], Image.Image]


def _code_ops() -> dict[str, Transform]:
    def enhance(kind: str) -> Transform:  # factor 0.1 + 0.18L in [0.28, 1.72] (416-423)
        return lambda image, level, rng: ops.enhance(image, kind, float_parameter(level, 1.8) + 0.1)

    def shift(op: Callable) -> Transform:  # L pixels, random sign (320-360)
        return lambda image, level, rng: op(image, _random_sign(int_parameter(level, 10), rng))

    def shear(op: Callable) -> Transform:  # 0.03L, random sign (274-314)
        return lambda image, level, rng: op(image, _random_sign(float_parameter(level, 0.3), rng))

    return {
        "Identity": lambda image, level, rng: image,
        "AutoContrast": lambda image, level, rng: ops.autocontrast(image),
        "Equalize": lambda image, level, rng: ops.equalize(image),
        # int(3L) degrees, random sign (254-259)
        "Rotate": lambda image, level, rng: ops.rotate(
            image, _random_sign(int_parameter(level, 30), rng)
        ),
        # threshold 256 - int(25.6L) (376-391)
        "Solarize": lambda image, level, rng: ops.solarize(image, 256 - int_parameter(level, 256)),
        "Color": enhance("color"),
        "Contrast": enhance("contrast"),
        "Brightness": enhance("brightness"),
        "Sharpness": enhance("sharpness"),
        "ShearX": shear(ops.shear_x),
        "TranslateX": shift(ops.translate_x),
        "TranslateY": shift(ops.translate_y),
        # 4 - int(0.4L) bits: 4, 4, 3, 3, 2, 2, 2, 1, 1 (265-268)
        "Posterize": lambda image, level, rng: ops.posterize(image, 4 - int_parameter(level, 4)),
        "ShearY": shear(ops.shear_y),
    }


def _paper_ops() -> dict[str, Transform]:
    """The paper table's ranges, level L of 10 placed linearly in each (spec §3.5): enhance
    factor 0.05 + 0.09L (in [0.05, 0.95]), posterize 4 + int(0.4L) bits (4..8 over 0..10;
    4..7 at levels 1..9), translate ±int(0.03L·size) pixels (of ±30 %). Rotate (±30), shear
    (±0.3) and solarize ([0, 256]) keep the code's mapping, which already spans the paper's."""
    code = _code_ops()

    def enhance(kind: str) -> Transform:
        return lambda image, level, rng: ops.enhance(image, kind, 0.05 + 0.09 * level)

    def shift(op: Callable, axis: int) -> Transform:
        def transform(image: Image.Image, level: int, rng: np.random.Generator) -> Image.Image:
            pixels = int(float_parameter(level, 0.3) * image.size[axis])
            return op(image, _random_sign(pixels, rng))

        return transform

    return code | {
        "Color": enhance("color"),
        "Contrast": enhance("contrast"),
        "Brightness": enhance("brightness"),
        "Sharpness": enhance("sharpness"),
        "TranslateX": shift(ops.translate_x, 0),
        "TranslateY": shift(ops.translate_y, 1),
        "Posterize": lambda image, level, rng: ops.posterize(image, 4 + int_parameter(level, 4)),
    }


OPS = {"code": _code_ops(), "paper": _paper_ops()}

Policy = list[tuple[str, float, int]]


def policy(rng: np.random.Generator, n_ops: int = 2, probability: float = 0.5) -> Policy:
    """`n_ops` names with replacement, each with its probability and a level in 1..9
    (augment.py:195-206: np.random.choice, then randint(1, 10) per op)."""
    names = rng.choice(len(NAMES), n_ops)
    return [(NAMES[i], probability, int(rng.integers(1, PARAMETER_MAX))) for i in names]


def to_rgba(image: np.ndarray) -> Image.Image:
    """[-1, 1] -> uint8 by truncating (x·0.5 + 0.5)·255 in float64 (pil_wrap), as RGBA."""
    scaled = (np.asarray(image, np.float32).astype(np.float64) * 0.5 + 0.5) * 255.0
    return ops.to_pil(scaled.astype(np.uint8)).convert("RGBA")


def from_rgba(image: Image.Image) -> np.ndarray:
    """RGBA -> [-1, 1], pixels with alpha 0 set to 0 (pil_unwrap)."""
    pixels = np.asarray(image, np.float64) / 255.0
    out = (pixels[..., :3] - 0.5) / 0.5
    out[pixels[..., 3] == 0] = 0
    return out


def apply_policy(
    image: np.ndarray, steps: Policy, rng: np.random.Generator, ranges: str = "code"
) -> np.ndarray:
    """Each op with its probability (`rng.random() < p`), in order (augmentations.py)."""
    pil = to_rgba(image)
    for name, probability, level in steps:
        if rng.random() < probability:
            pil = OPS[ranges][name](pil, level, rng)
    return from_rgba(pil)


def cutout(image: np.ndarray, rng: np.random.Generator, side: int = CUTOUT_SIDE) -> np.ndarray:
    """Zeroes a `side` square centred uniformly, clipped (cutout_numpy)."""
    top, bottom, left, right = ops.cutout_box(image.shape[0], image.shape[1], side, rng)
    out = np.array(image)
    out[top:bottom, left:right] = 0
    return out


def strong(
    image: np.ndarray,
    rng: np.random.Generator,
    ranges: str = "code",
    n_ops: int = 2,
    probability: float = 0.5,
) -> np.ndarray:
    """The RA strong view of a weak draw: a policy, then the cutout; float32 in [-1, 1]."""
    augmented = apply_policy(image, policy(rng, n_ops, probability), rng, ranges)
    return cutout(augmented, rng).astype(np.float32)
