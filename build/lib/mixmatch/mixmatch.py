"""The math of one MixMatch iteration (Berthelot et al. 2019, arXiv:1905.02249), as pure functions.

Spec: mixmatch.md §3.1 (guess, sharpen, MixUp), §3.2 (losses, λ_U ramp), §3.3 (interleave),
§3.4 (kernel decay, EMA). `mixmatch/step.py` strings them together."""

from collections.abc import Sequence

import keras
import tensorflow as tf

from ns3l.types import Tensor


def sharpen(p: Tensor, temperature: float = 0.5) -> Tensor:
    """q_k = p_k^(1/T) / Σ_j p_j^(1/T) per row (spec §3.1); p, q [B, K]."""
    # A softmax of log(p)/T: p^(1/T) underflows for small T, the log form does not.
    return tf.nn.softmax(tf.math.log(p) / temperature, axis=-1)


def guess_labels(
    model: keras.Model, u1: Tensor, u2: Tensor, sharpen_temperature: float = 0.5
) -> Tensor:
    """Sharpened mean of the softmaxes on the two views, a constant [B, K] (spec §3.1 step 1).

    u1, u2 [B, H, W, C]: two augmentations of the same B images. Raw weights, batch statistics,
    BN moving averages untouched (passes G1, G2 of §2.3)."""
    # Two separate passes, not one over concat(u1, u2): each normalises with its own batch.
    probs = [tf.nn.softmax(model(u, training=True, update_bn_stats=False)) for u in (u1, u2)]
    return tf.stop_gradient(sharpen((probs[0] + probs[1]) / 2, sharpen_temperature))


def mixup_parameters(
    rows: int | Tensor, mixup_alpha: float, generator: tf.random.Generator
) -> tuple[Tensor, Tensor]:
    """λ' = max(λ, 1 − λ) with λ ~ Beta(α, α) per row, and one uniform permutation (spec §3.1).

    Returns λ' [rows] float32 and permutation [rows] int32, both drawn from `generator`, so a
    checkpointed generator replays them."""
    # tf.random.Generator has no beta: λ = G₁ / (G₁ + G₂) with G ~ Gamma(α), seeded from the
    # generator. For α below about 0.2 both gammas can underflow to 0 in float32 (NaN).
    seeds = generator.make_seeds(2)  # [2, 2], one column per gamma
    shape = tf.reshape(rows, [1])
    gammas = [tf.random.stateless_gamma(shape, seeds[:, i], mixup_alpha) for i in range(2)]
    lam = gammas[0] / (gammas[0] + gammas[1])
    permutation = tf.argsort(generator.uniform(shape))  # fixed points allowed, as the original
    return tf.maximum(lam, 1.0 - lam), permutation


def mixup(x: Tensor, targets: Tensor, lam: Tensor, permutation: Tensor) -> tuple[Tensor, Tensor]:
    """x'_i = λ'_i·x_i + (1 − λ'_i)·x_π(i), and the same for the targets (spec §3.1 step 3).

    x [N, ...], targets [N, K], lam [N] already λ' = max(λ, 1 − λ) (see `mixup_parameters`),
    permutation [N]. Returns (x' [N, ...], targets' [N, K]): "xxy.yxy" mode, λ' ≥ ½ keeps x_i
    dominant, so row i of x' still counts as labeled or unlabeled as row i of x did."""

    def mix(values: Tensor) -> Tensor:
        weight = tf.reshape(tf.cast(lam, values.dtype), [-1] + [1] * (len(values.shape) - 1))
        return weight * values + (1 - weight) * tf.gather(values, permutation)

    return mix(x), mix(targets)


def interleave(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Swaps chunk i of tensors[0] with chunk i of tensors[i], i ≥ 1 (spec §3.3); its own inverse.

    n tensors of the same B rows, each cut into n chunks of B // n rows; the B mod n leftover
    rows go one each to the last chunks: 21, 21, 22 at B = 64 (offsets 0, 21, 42, 64), 10, 11,
    11 at B = 32 (batch 64 on two replicas). Returns n tensors of B rows: with X', U'₁, U'₂ the
    three passes of §3.3; applied to their logits, the logits of X', U'₁, U'₂ again."""
    parts = len(tensors)
    batch = tf.shape(tensors[0])[0]
    extra = tf.cast(tf.range(parts) >= parts - batch % parts, tf.int32)
    sizes = batch // parts + extra  # [parts]
    chunks = [tf.split(tensor, sizes, num=parts) for tensor in tensors]
    for i in range(1, parts):
        chunks[0][i], chunks[i][i] = chunks[i][i], chunks[0][i]
    return [tf.concat(row, axis=0) for row in chunks]


def soft_cross_entropy(targets: Tensor, logits: Tensor) -> Tensor:
    """L_X = mean over rows of −Σ_k P'_k log softmax(z)_k (spec §3.2); [B, K] -> scalar."""
    logits = tf.cast(logits, tf.float32)
    per_row = tf.nn.softmax_cross_entropy_with_logits(tf.stop_gradient(targets), logits)
    return tf.reduce_mean(per_row)


def mean_squared_error(targets: Tensor, logits: Tensor) -> Tensor:
    """L_U = mean over rows and classes of (P'_k − softmax(z)_k)² (spec §3.2); [B, K] -> scalar.

    The mean over classes is the original's: a sum over classes would make λ_U K times larger."""
    probs = tf.nn.softmax(tf.cast(logits, tf.float32))
    return tf.reduce_mean(tf.square(tf.stop_gradient(targets) - probs))


def lambda_u(iteration: Tensor, w_match: float, warmup_iterations: int = 16_384) -> Tensor:
    """λ_U = w_match · clip(t / warmup, 0, 1), t in iterations (spec §3.2); a float32 scalar.

    The original counts labeled images and ramps over 1,024 kimg: 1,024·1,024 / 64 = 16,384
    iterations of batch 64, the default. A warmup of the whole run would be wrong (§9.12)."""
    ramp = tf.cast(iteration, tf.float32) / float(warmup_iterations)
    return w_match * tf.clip_by_value(ramp, 0.0, 1.0)


def kernel_variables(model: keras.Model) -> list[keras.Variable]:
    """Every conv and dense kernel of `model` (the 1x1 projections too): what §3.4 decays.

    Biases, BN γ/β and BN moving statistics are not kernels and are never decayed."""
    # The original selects by name ("kernel" in the variable name); Keras names them "kernel".
    return [variable for variable in model.trainable_variables if variable.name == "kernel"]


def decay_kernels(kernels: Sequence[keras.Variable], decay: float) -> None:
    """kernel ← kernel · (1 − decay) for each, after the optimizer step (spec §3.4).

    `decay` = wd · lr = 0.02 · 0.002 = 4e-5: decoupled, not scaled by Adam's denominators."""
    for kernel in kernels:
        kernel.assign(kernel * (1.0 - decay))


def ema_update(
    shadow: Sequence[keras.Variable], variables: Sequence[keras.Variable], decay: float = 0.999
) -> None:
    """shadow ← decay · shadow + (1 − decay) · variable, pairwise (spec §3.4).

    Constant decay, no warm-up or debiasing; the caller passes trainable variables only (the EMA
    model evaluates with the raw model's BN moving statistics)."""
    for average, variable in zip(shadow, variables, strict=True):
        average.assign(decay * average + (1.0 - decay) * variable)
