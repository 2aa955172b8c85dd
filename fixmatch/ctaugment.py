"""CTAugment as FixMatch's CIFAR code runs it (spec fixmatch.md §3.3): 19 ops, each with one
vector of bin rates per parameter, learned from how well the EMA model still classifies labeled
images augmented by random ("probe") policies.

An op's parameters are in [0, 1); each maps onto the PIL op as ctaugment.py:92-219 does. A policy
is a list of (op name, parameters); a strong image is its weak draw through two sampled ops and
then a 16-pixel gray cutout (the op `cutout` at level 1, fixmatch.py:40-41).

Randomness comes from one `np.random.Generator` per image (the caller derives it from the seed,
step and row), not from Python's and NumPy's global generators as in the original, so workers
never repeat each other's draws (the original's quirk §3.3b) and a resumed run draws the same.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fixmatch import imageops as ops


@dataclass(frozen=True)
class Op:
    """`bins`: the number of bins of each parameter; `apply(image, *parameters, rng)`."""

    bins: tuple[int, ...]
    apply: Callable[..., Image.Image]


def _blended(op: Callable[[Image.Image], Image.Image]) -> Op:
    """blend(image, op(image), v) (ctaugment.py:104-111, 145-152, 199-201)."""
    return Op((17,), lambda image, v, rng: ops.blend(image, op(image), v))


def _enhanced(kind: str) -> Op:
    """PIL enhance at factor 0.1 + 1.9v (ctaugment.py:92-93)."""
    return Op((17,), lambda image, v, rng: ops.enhance(image, kind, 0.1 + 1.9 * v))


def cutout(image: Image.Image, v: float, rng: np.random.Generator) -> Image.Image:
    """A gray (127) square of side 1 + int(0.499·v·min(W, H)) (then rounded down to even by
    `square_bounds`), centre uniform over the pixels, clipped (ctaugment.py:129-142)."""
    pixels = np.array(image)
    side = 1 + int(v * min(image.size) * 0.499)
    top, bottom, left, right = ops.cutout_box(image.height, image.width, side, rng)
    pixels[top:bottom, left:right] = 127
    return ops.to_pil(pixels)


def _rescale(image: Image.Image, v: float, method: float, rng: np.random.Generator):
    """Crop 0.25v off each side, resize back with filter int(5.99·method) (ctaugment.py:166-173)."""
    return ops.rescale(image, 0.25 * v, ops.RESAMPLE[int(method * 5.99)])


def _signed(v: float, scale: float) -> float:
    return (2 * v - 1) * scale


OPS: dict[str, Op] = {  # ctaugment.py's registration order
    "autocontrast": _blended(ops.autocontrast),
    "blur": _blended(ops.blur),
    "brightness": _enhanced("brightness"),
    "color": _enhanced("color"),
    "contrast": _enhanced("contrast"),
    "cutout": Op((17,), cutout),
    "equalize": _blended(ops.equalize),
    "invert": _blended(ops.invert),
    "identity": Op((), lambda image, rng: image),
    "posterize": Op((8,), lambda image, v, rng: ops.posterize(image, 1 + int(v * 7.999))),
    "rescale": Op((17, 6), _rescale),
    "rotate": Op((17,), lambda image, v, rng: ops.rotate(image, int(np.round(_signed(v, 45))))),
    "sharpness": _enhanced("sharpness"),
    "shear_x": Op((17,), lambda image, v, rng: ops.shear_x(image, _signed(v, 0.3))),
    "shear_y": Op((17,), lambda image, v, rng: ops.shear_y(image, _signed(v, 0.3))),
    "smooth": _blended(ops.smooth),
    "solarize": Op((17,), lambda image, v, rng: ops.solarize(image, int(v * 255.999))),
    # (2v - 1)·0.3 *pixels*: nearest-neighbour sampling turns these into no-ops (spec §3.3c);
    # kept as the original has them, since they still take a slot of the depth-2 policy.
    "translate_x": Op((17,), lambda image, v, rng: ops.translate_x(image, _signed(v, 0.3))),
    "translate_y": Op((17,), lambda image, v, rng: ops.translate_y(image, _signed(v, 0.3))),
}
NAMES = tuple(OPS)
CUTOUT = ("cutout", (1.0,))  # appended to every strong policy (fixmatch.py:40-41)

Policy = list[tuple[str, tuple[float, ...]]]


class CTAugment:
    """The bin rates and the rules that sample from and update them (ctaugment.py:43-84); the
    defaults are FixMatch's flags (depth 2, decay 0.99, threshold 0.80: cta/lib/train.py:26-28;
    the class's own default threshold 0.85 is never used)."""

    def __init__(self, depth: int = 2, threshold: float = 0.80, decay: float = 0.99) -> None:
        self.depth, self.threshold, self.decay = depth, threshold, decay
        self.rates = {name: [np.ones(n, np.float64) for n in op.bins] for name, op in OPS.items()}

    def probabilities(self, rate: np.ndarray) -> np.ndarray:
        """A parameter's bin distribution: (rate + 1 - decay) / its max, zeroed below the
        threshold, normalised (ctaugment.py:51-56)."""
        weight = rate + (1 - self.decay)
        weight = weight / weight.max()
        weight[weight < self.threshold] = 0
        return weight / weight.sum()

    def policy(self, rng: np.random.Generator, probe: bool = False) -> Policy:
        """`depth` ops uniform over the 19, with replacement. A probe's parameters are uniform in
        [0, 1); a training policy's are (bin + u) / bins with the bin drawn from `probabilities`,
        all u drawn before the bins (ctaugment.py:58-78)."""
        policy = []
        for _ in range(self.depth):
            name = NAMES[rng.integers(len(NAMES))]
            u = rng.uniform(0, 1, len(self.rates[name]))
            if probe:
                policy.append((name, tuple(u.tolist())))
                continue
            values = []
            for r, rate in zip(u, self.rates[name], strict=True):
                chosen = rng.choice(len(rate), p=self.probabilities(rate))
                values.append(float((chosen + r) / len(rate)))
            policy.append((name, tuple(values)))
        return policy

    def update(self, policy: Policy, proximity: float) -> None:
        """For each op of a probe's policy and each parameter: the bin int(v·bins·0.999) moves
        to decay·rate + (1 - decay)·proximity (ctaugment.py:80-84)."""
        for name, values in policy:
            for v, rate in zip(values, self.rates[name], strict=True):
                chosen = int(v * len(rate) * 0.999)
                rate[chosen] = rate[chosen] * self.decay + proximity * (1 - self.decay)

    def state(self) -> dict[str, np.ndarray]:
        """Every rate vector by `op/parameter`, for the checkpoint."""
        return {f"{name}/{i}": rate for name, rates in self.rates.items()
                for i, rate in enumerate(rates)}  # fmt: skip

    def state_copy(self) -> dict[str, np.ndarray]:
        return {key: rate.copy() for key, rate in self.state().items()}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        for key, rate in self.state().items():
            rate[...] = state[key]


def proximity(probabilities: np.ndarray, label: int) -> float:
    """1 - ½·||p - onehot(label)||₁ (cta/lib/train.py:71-76), p_label when p sums to 1."""
    onehot = np.zeros_like(probabilities)
    onehot[label] = 1
    return float(1 - 0.5 * np.abs(probabilities - onehot).sum())


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8 by round(127.5·(1 + x)) (ctaugment.py:34-40), lossless for the data's
    x = v·2/255 - 1."""
    return np.round(127.5 * (1 + np.asarray(image, np.float64))).clip(0, 255).astype(np.uint8)


def apply(image: np.ndarray, policy: Policy, rng: np.random.Generator) -> np.ndarray:
    """`image` [H, W, 3] in [-1, 1] through `policy`'s ops in order, back to float32 [-1, 1]."""
    pil = ops.to_pil(to_uint8(image))
    for name, values in policy:
        pil = OPS[name].apply(pil, *values, rng)
    return (np.asarray(pil, np.float32) / 127.5 - 1).astype(np.float32)


def strong(image: np.ndarray, cta: CTAugment, rng: np.random.Generator) -> np.ndarray:
    """FixMatch's strong view of a weak draw: two sampled ops, then the gray cutout."""
    return apply(image, [*cta.policy(rng), CUTOUT], rng)
