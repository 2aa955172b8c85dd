"""The NS3L loss (Chen, Shah, Kyrillidis, ICML 2020, Sec. 3 and Algorithm 1) for any Keras model.

Three ways in, one computation: `ns3l_loss` (a function), `NS3LLoss` (a `keras.losses.Loss` for
`model.compile`) and `NS3L` (a layer that adds the loss to a functional model). Every one of them
computes, per row i of a batch of B,

    ℓ_i = -log(clip(1 - Σ_{k ∈ N_i} softmax(logits)_ik, 1e-8, 1)),

where N_i, the negative classes of row i, are the classes whose target probability is below the
threshold T (Algorithm 1, line 4), or P classes drawn uniformly (Sec. 3.1). Only `keras.ops` and
`keras.random` are used, so the module runs on any Keras backend.

Two numerics (`numerics=`, docs/ns3l.md): "reference" is the released ns3l.py's float32 formula,
softmax, 1 - Σ, clamp at 1e-8: near saturation the subtraction cancels, so rows whose exact loss
is below the cap reach the clamp and get no gradient. "stable" computes -log Σ_{k ∉ N} p_k as a
difference of log-sum-exps, within 1e-6 of float64, and keeps their gradient. The training stacks
use "reference" (the protocol of the paper's numbers); the Keras loss and layer default to
"stable".
"""

import math

import keras
from keras import ops

from ns3l.types import Tensor

# The released ns3l.py clamps 1 - s to [1e-8, 1], so one row never costs more than -log(1e-8)
# (spec mixmatch.md §6.2-6.3).
CLAMP_MIN = 1e-8
MAX_ROW_LOSS = -math.log(CLAMP_MIN)  # 18.42
# Stands in for -inf on negative classes: exp() of it is exactly 0 in float32, and unlike -inf it
# keeps a row whose classes are all negative finite (then capped, with zero gradient, not NaN).
_EXCLUDED_LOGIT = -1e30
NEGATIVE_SAMPLING = ("threshold", "random")
NUMERICS = ("stable", "reference")


def negatives_below(targets: Tensor, threshold: float) -> Tensor:
    """Boolean [B, K]: class k is a negative of row i when targets[i, k] < threshold (strict).

    Algorithm 1, line 4. `targets` only choose the classes: no gradient flows into them."""
    _check_threshold(threshold)
    return ops.less(ops.stop_gradient(ops.cast(targets, "float32")), threshold)


def random_negatives(
    batch_size: int, num_classes: int, num_negatives: int, seed: object = None
) -> Tensor:
    """Boolean [B, K] with exactly `num_negatives` classes per row, drawn uniformly without
    replacement (Sec. 3.1: "we randomly assign P labels"). `seed` is anything keras.random takes,
    e.g. a `keras.random.SeedGenerator` for fresh draws at every call inside a tf.function."""
    if not 1 <= num_negatives < num_classes:
        raise ValueError(
            f"num_negatives={num_negatives!r}: expected an integer in [1, {num_classes - 1}] "
            f"for {num_classes} classes"
        )
    scores = keras.random.uniform((batch_size, num_classes), seed=seed)
    kth_largest = ops.top_k(scores, num_negatives)[0][:, -1:]
    return ops.greater_equal(scores, kth_largest)


def ns3l_per_example(
    negatives: Tensor, logits: Tensor, from_logits: bool = True, numerics: str = "stable"
) -> Tensor:
    """ℓ_i = -log(clip(1 - Σ_k negatives_ik · p_ik, 1e-8, 1)), shape [B], float32.

    `negatives` is a boolean [B, K] (see `negatives_below`); `logits` [B, K] are the outputs being
    penalised, or probabilities p when `from_logits=False` (then both numerics are the formula
    as written). A row without negatives gives 0. `numerics`: see the module docstring."""
    _check_numerics(numerics)
    negatives = ops.cast(negatives, "bool")
    outputs = ops.cast(logits, "float32")  # float32 even under a mixed-precision policy
    if from_logits and numerics == "stable":
        # -log(Σ_{k ∉ N} p_k) as a difference of log-sum-exps: exact where 1 - s underflows.
        kept = ops.where(negatives, _EXCLUDED_LOGIT, outputs)
        per_row = ops.logsumexp(outputs, axis=-1) - ops.logsumexp(kept, axis=-1)
        return ops.clip(per_row, 0.0, MAX_ROW_LOSS)
    probs = ops.softmax(outputs, axis=-1) if from_logits else outputs
    negative_mass = ops.sum(ops.where(negatives, probs, 0.0), axis=-1)
    return -ops.log(ops.clip(1.0 - negative_mass, CLAMP_MIN, 1.0))


def ns3l_loss(
    targets: Tensor,
    logits: Tensor,
    threshold: float = 0.04,
    mask: Tensor | None = None,
    from_logits: bool = True,
    numerics: str = "stable",
) -> Tensor:
    """Σ_i mask_i · ℓ_i / B with negatives {k : targets_ik < threshold} (NS3L Alg. 1), a scalar.

    `targets` [B, K] only pick the negative classes and carry no gradient: the caller chooses them
    (the first view's softmax in realistic_ssl, the mixed targets in mixmatch). The sum is divided
    by the whole batch B, not by Σ mask, as the released code does (spec realistic_ssl.md §5.1).
    Under tf.distribute, divide by the global batch instead (docs/ns3l.md)."""
    per_row = ns3l_per_example(negatives_below(targets, threshold), logits, from_logits, numerics)
    if mask is not None:
        per_row = per_row * ops.cast(mask, "float32")
    return ops.mean(per_row)


def _check_numerics(numerics: str) -> None:
    if numerics not in NUMERICS:
        raise ValueError(f"numerics={numerics!r}: expected one of stable, reference")


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold={threshold!r}: expected a probability in (0, 1)")


def check_targets(
    targets: Tensor,
    logits: Tensor,
    what: str = "targets",
    advice: str = "with labels in model.fit, use the ns3l.NS3L layer (docs/ns3l.md)",
) -> None:
    """A one-line ValueError unless `targets` can pick negatives for `logits`: probabilities of
    the logits' shape [B, K] (another view's softmax, mixed targets), not class labels. Shapes
    are checked where they are known statically (always in eager and in Keras' traced steps)."""
    dtype = keras.backend.standardize_dtype(getattr(targets, "dtype", "float32"))
    shape, want = _static_shape(targets), _static_shape(logits)
    known = len(shape) == len(want) and all(
        a is None or b is None or a == b for a, b in zip(shape, want, strict=True)
    )
    if "int" in dtype or "bool" in dtype or not known:
        raise ValueError(
            f"{what} of dtype {dtype} and shape {shape}: NS3L needs probabilities of the logits' "
            f"shape {want} to choose the negative classes (e.g. another view's softmax), not "
            f"class labels; {advice}"
        )


def _static_shape(x: Tensor) -> tuple[int | None, ...]:
    """The shape as far as it is known before running: None for a dimension fixed at run time."""
    return tuple(None if d is None else int(d) for d in getattr(x, "shape", ()))


class _NegativeSampler:
    """The negative-selection options shared by `NS3LLoss` and `NS3L`."""

    def __init__(self, negatives: str, threshold: float, num_negatives: int | None, seed: object):
        if negatives not in NEGATIVE_SAMPLING:
            raise ValueError(f"negatives={negatives!r}: expected one of threshold, random")
        if negatives == "random" and num_negatives is None:
            raise ValueError("negatives='random' needs num_negatives (P, classes drawn per row)")
        if negatives == "threshold":
            _check_threshold(threshold)
        self.negatives, self.threshold = negatives, threshold
        self.num_negatives, self.seed = num_negatives, seed
        self._seed_generator = keras.random.SeedGenerator(seed) if negatives == "random" else None

    def __call__(self, targets: Tensor, logits: Tensor) -> Tensor:
        if self.negatives == "threshold":
            return negatives_below(targets, self.threshold)
        batch_size, num_classes = ops.shape(logits)[0], logits.shape[-1]
        return random_negatives(batch_size, num_classes, self.num_negatives, self._seed_generator)

    def get_config(self) -> dict:
        return {
            "negatives": self.negatives,
            "threshold": self.threshold,
            "num_negatives": self.num_negatives,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="ns3l")
class NS3LLoss(keras.losses.Loss):
    """NS3L as a Keras loss: `loss(y_true=targets, y_pred=logits, sample_weight=mask)`.

    The value equals `ns3l_loss(targets, logits, threshold, mask, from_logits)`: Keras' default
    "sum_over_batch_size" reduction divides Σ_i w_i ℓ_i by B, like the reference. With
    `negatives="random"`, `y_true` is ignored and `num_negatives` classes are drawn per row."""

    def __init__(
        self,
        threshold: float = 0.04,
        from_logits: bool = True,
        negatives: str = "threshold",
        num_negatives: int | None = None,
        seed: int | None = None,
        numerics: str = "stable",
        name: str = "ns3l",
        reduction: str = "sum_over_batch_size",
    ):
        super().__init__(name=name, reduction=reduction, dtype="float32")
        _check_numerics(numerics)
        self.sampler = _NegativeSampler(negatives, threshold, num_negatives, seed)
        self.from_logits, self.numerics = from_logits, numerics

    def __call__(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None):
        # Before Keras casts y_true to float32, so integer labels are still recognisable.
        if self.sampler.negatives == "threshold":
            check_targets(y_true, y_pred, "y_true")
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        negatives = self.sampler(y_true, y_pred)
        return ns3l_per_example(negatives, y_pred, self.from_logits, self.numerics)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "reduction": self.reduction,
            "from_logits": self.from_logits,
            "numerics": self.numerics,
            **self.sampler.get_config(),
        }


@keras.saving.register_keras_serializable(package="ns3l")
class NS3L(keras.layers.Layer):
    """Adds `weight · NS3L(targets, logits)` to the model's losses and returns the logits unchanged.

        logits = keras.layers.Dense(num_classes)(features)
        logits = ns3l.NS3L(weight=1.0, threshold=0.04)(logits)

    `targets` default to the layer's own detached softmax of the logits (Algorithm 1 as written);
    pass other probabilities, e.g. a second view's, as `targets`. `sample_mask` [B] restricts the
    loss to some rows (e.g. 1 for unlabeled rows) while still dividing by B. `loss_weight` is a
    non-trainable variable, so a callback can ramp it without retracing."""

    def __init__(
        self,
        weight: float = 1.0,
        threshold: float = 0.04,
        negatives: str = "threshold",
        num_negatives: int | None = None,
        seed: int | None = None,
        numerics: str = "stable",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_numerics(numerics)
        self.sampler = _NegativeSampler(negatives, threshold, num_negatives, seed)
        self.numerics = numerics
        self.loss_weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(weight),
            trainable=False,
            name="loss_weight",
            dtype="float32",
        )

    def __call__(self, logits: Tensor, targets: Tensor | None = None, *args, **kwargs):
        # Here rather than in call(), whose errors Keras wraps in a paragraph of its own.
        if targets is not None and self.sampler.negatives == "threshold":
            check_targets(targets, logits, advice="leave targets out for the layer's own softmax")
        return super().__call__(logits, targets, *args, **kwargs)

    def call(
        self, logits: Tensor, targets: Tensor | None = None, sample_mask: Tensor | None = None
    ):
        if targets is None:
            targets = ops.softmax(ops.cast(logits, "float32"))
        per_row = ns3l_per_example(self.sampler(targets, logits), logits, numerics=self.numerics)
        if sample_mask is not None:
            per_row = per_row * ops.cast(sample_mask, "float32")
        self.add_loss(self.loss_weight * ops.mean(per_row))
        return logits

    def compute_output_spec(self, logits, targets=None, sample_mask=None):
        return keras.KerasTensor(logits.shape, dtype=logits.dtype)

    def get_config(self) -> dict:
        weight = float(ops.convert_to_numpy(self.loss_weight))
        return {
            **super().get_config(),
            "weight": weight,
            "numerics": self.numerics,
            **self.sampler.get_config(),
        }
