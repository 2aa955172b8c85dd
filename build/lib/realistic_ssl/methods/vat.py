"""Virtual adversarial training (Miyato et al. 2018, arXiv:1704.03976) as run by Oliver et al.

Spec: realistic_ssl.md §4.4-4.5, §9.8-9.9. Follows [TF] `third_party/vat/vat_utils.py`: one power
iteration with ξ = 1e-6, r_adv added to the pre-augmentation input (the network augments inside
each call), and the loss KL(p(x + r_adv) ‖ p(x)): the REVERSE of Miyato et al.'s KL(p(x) ‖
p(x + r_adv)), kept by the [TF] authors after trying both (issue #27) and copied by [PT]."""

import keras
import tensorflow as tf

from ns3l.types import Tensor
from realistic_ssl.methods import distances


def normalize(v: Tensor) -> Tensor:
    """v / ‖v‖₂ per example (all axes but the first), as [TF] computes it (§4.4 step 1).

    Dividing by max|v| first keeps Σv² finite for huge v; the 1e-6 keeps a zero v at zero."""
    axes = list(range(1, len(v.shape)))
    v = v / (1e-12 + tf.reduce_max(tf.abs(v), axis=axes, keepdims=True))
    return v / tf.sqrt(1e-6 + tf.reduce_sum(tf.square(v), axis=axes, keepdims=True))


def adversarial_perturbation(
    model: keras.Model,
    x: Tensor,
    logits: Tensor,
    vat_epsilon: float,
    vat_xi: float,
    generator: tf.random.Generator,
) -> Tensor:
    """r_adv, shape of x, with ‖r_adv‖₂ = vat_epsilon per example and no gradient (§4.4 2-4).

    x [B, H, W, C] is the pre-augmentation batch and logits [B, K] its first pass. `generator`
    draws the random start, so the trainer can checkpoint it."""
    clean_logits = tf.stop_gradient(logits)
    # With ξ = 1e-6, x + d mostly rounds back to x in float32, as in [TF]: only the gradient with
    # respect to d is used, and it is the input gradient at (almost) x.
    d = vat_xi * normalize(generator.normal(tf.shape(x), dtype=x.dtype))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(d)
        perturbed_logits = model(x + d, training=True, update_bn_stats=False)
        # Batch mean, clean -> perturbed: the direction [TF]'s power iteration uses (§9.8).
        kl = tf.reduce_mean(distances.kl_divergence(clean_logits, perturbed_logits))
    # With different augmentations in the two passes the KL at d ≈ 0 is not ≈ 0, so g mostly
    # follows the view mismatch rather than the curvature: a [TF] quirk kept for fidelity (§4.4).
    return vat_epsilon * normalize(tf.stop_gradient(tape.gradient(kl, d)))


def adversarial_logits(
    model: keras.Model,
    x: Tensor,
    logits: Tensor,
    vat_epsilon: float,
    vat_xi: float,
    generator: tf.random.Generator,
) -> Tensor:
    """Logits [B, K] of a fresh pass on x + r_adv; the gradient reaches the weights through this
    pass only (r_adv is a constant). This is the student of `consistency` and `entropy`."""
    r_adv = adversarial_perturbation(model, x, logits, vat_epsilon, vat_xi, generator)
    return model(x + r_adv, training=True, update_bn_stats=False)


def consistency(logits_adv: Tensor, logits: Tensor) -> Tensor:
    """KL(p(x + r_adv) ‖ p(x)) per example, shape [B]: [TF]'s `forward_kl`, clean pass stopped."""
    return distances.kl_divergence(logits_adv, tf.stop_gradient(logits))


def entropy(logits_adv: Tensor) -> Tensor:
    """H(p(x + r_adv)) per example, shape [B], for VAT + EntMin (§4.5), weighted by β unramped.

    [TF] takes the entropy of the adversarial pass, as here; [PT] takes the clean first pass."""
    return distances.entropy(logits_adv)
