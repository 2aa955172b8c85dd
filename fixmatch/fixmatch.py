"""The math of one FixMatch iteration (spec fixmatch.md §5-§6), and NS3L on its unlabeled rows
(§11). Pure functions of tensors; the trainer (step.py) strings them together."""

import math
from collections.abc import Sequence

import keras
import tensorflow as tf

from ns3l.loss import negatives_below, ns3l_per_example
from ns3l.types import Tensor


def pseudo_labels(logits_weak: Tensor, threshold: float = 0.95) -> tuple[Tensor, Tensor, Tensor]:
    """q = stop_gradient(softmax(z_w)), ŷ = argmax q and the float mask 1[max q ≥ τ]
    (fixmatch.py:113-116: `>=`, so a row exactly at τ counts)."""
    q = tf.stop_gradient(tf.nn.softmax(tf.cast(logits_weak, tf.float32)))
    mask = tf.cast(tf.reduce_max(q, axis=1) >= threshold, tf.float32)
    return q, tf.argmax(q, axis=1, output_type=tf.int32), mask


def cross_entropy(labels: Tensor, logits: Tensor) -> Tensor:
    """Sparse softmax cross-entropy per row, float32."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))


def unlabeled_loss(labels: Tensor, mask: Tensor, logits_strong: Tensor) -> Tensor:
    """L_u = (1/μB) Σ_b m_b · CE(ŷ_b, z_s,b): divided by all μB rows, not by Σ m (§5 step 5)."""
    return tf.reduce_mean(mask * cross_entropy(labels, logits_strong))


def l2_penalty(kernels: Sequence[keras.Variable], wd: float) -> Tensor:
    """wd · Σ ½||W||² over the conv and dense kernels: coupled L2 in the loss, so its gradient
    goes through the momentum (§6; not Keras' decoupled `weight_decay=`)."""
    return wd * tf.add_n([tf.nn.l2_loss(tf.cast(kernel, tf.float32)) for kernel in kernels])


class CosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr · cos(7π·r/16), r = clip(k/K, 0, 1) at the 0-based iteration k of K (fixmatch.py:92-93,
    175): 0.03 at the start, 0.03·cos(7π/16) = 0.005853 at the end, no warm-up."""

    def __init__(self, lr: float, total_iterations: int) -> None:
        self.lr, self.total_iterations = lr, total_iterations

    def __call__(self, step: Tensor) -> Tensor:
        r = tf.clip_by_value(tf.cast(step, tf.float32) / float(self.total_iterations), 0.0, 1.0)
        return self.lr * tf.cos(7.0 * math.pi * r / 16.0)

    def get_config(self) -> dict:
        return {"lr": self.lr, "total_iterations": self.total_iterations}


class NesterovSGD(keras.optimizers.Optimizer):
    """TF1's MomentumOptimizer(use_nesterov=True), the original's (fixmatch.py:130):
    a ← μa + g; W ← W − (g·lr + a·μ·lr), with lr applied when the update is made.

    Keras' SGD(nesterov=True) keeps lr inside the velocity (v ← μv − lr·g), which differs from
    this as soon as lr changes (spec §6, "Keras note")."""

    def __init__(self, learning_rate, momentum: float = 0.9, name: str = "nesterov_sgd", **kw):
        super().__init__(learning_rate=learning_rate, name=name, **kw)
        self.momentum = momentum

    def build(self, variables: Sequence[keras.Variable]) -> None:
        if self.built:
            return
        super().build(variables)
        self.accumulators = [self.add_variable_from_reference(v, "accumulator") for v in variables]

    def update_step(self, gradient: Tensor, variable: keras.Variable, learning_rate: Tensor):
        lr = tf.cast(learning_rate, variable.dtype)
        gradient = tf.cast(gradient, variable.dtype)
        accumulator = self.accumulators[self._get_variable_index(variable)]
        self.assign(accumulator, accumulator * self.momentum + gradient)
        self.assign_sub(variable, gradient * lr + accumulator * self.momentum * lr)

    def get_config(self) -> dict:
        return super().get_config() | {"momentum": self.momentum}


# NS3L on FixMatch's unlabeled rows: the choices of spec §11 are in choices.py.


def ns3l_negatives(
    selector_probabilities: Tensor, threshold: float, exclude_argmax: bool = True
) -> Tensor:
    """Boolean [μB, K]: classes whose selector probability is below T (strict), and never the
    selector's argmax (spec §11: keeps a near-uniform C = 100 row from making every class a
    negative, where F1 = -log 0)."""
    negatives = negatives_below(selector_probabilities, threshold)
    if exclude_argmax:
        top = tf.one_hot(tf.argmax(selector_probabilities, axis=1), tf.shape(negatives)[1])
        negatives = tf.logical_and(negatives, tf.logical_not(tf.cast(top, tf.bool)))
    return negatives


def ns3l_rows(mask: Tensor, rows: str) -> Tensor:
    """The float row weights for `rows`: the complement of FixMatch's mask (the rows L_u leaves
    out), every row, or the masked rows."""
    return {"unconfident": 1.0 - mask, "all": tf.ones_like(mask), "confident": mask}[rows]


def ns3l_term(
    negatives: Tensor,
    penalised: Sequence[Tensor],
    row_weights: Tensor,
    normalisation: str,
    numerics: str = "stable",
) -> Tensor:
    """Σ over `penalised` views of Σ_b w_b·ℓ_b / D, ℓ = -log(Σ_{k∉N_b} p_k) (NS3L's F1, the
    shared `ns3l` loss with its `numerics`), D = μB (`batch`, like L_u) or Σ_b w_b (`active`, at
    least 1)."""
    if normalisation == "batch":
        denominator = tf.cast(tf.shape(row_weights)[0], tf.float32)
    else:
        denominator = tf.maximum(tf.reduce_sum(row_weights), 1.0)
    per_view = [
        tf.reduce_sum(row_weights * ns3l_per_example(negatives, logits, numerics=numerics))
        / denominator
        for logits in penalised
    ]
    return tf.add_n(per_view)
