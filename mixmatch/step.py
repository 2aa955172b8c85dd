"""One MixMatch iteration (spec mixmatch.md §3.1), plus NS3L on the mixed targets (§6.1).

"+ NS3L" is not a method of its own: the step adds λ1 · NS3L(P', softmax(z)) over all 192 mixed
rows when `ns3l_weight` is set, reusing the logits of the three interleaved passes (no extra pass).
"""

from collections.abc import Mapping

import keras
import tensorflow as tf

from mixmatch import mixmatch as mm
from ns3l.loss import negatives_below, ns3l_per_example
from ns3l.training import precision, seeds
from ns3l.training.augment import Augmentation, augment
from ns3l.types import Tensor


class MixMatchTrainer:
    """Owns the optimizer, the EMA model and the random generators of the augmentation and
    MixUp (streams "augment" and "mixup");
    `train_step` is compiled once by the caller, directly or inside `strategy.run`. With
    `jit_compile` XLA compiles all of the step but the Beta draw of MixUp (see `train_step`).
    Build it inside `precision.policy_scope` under a float16 policy: the optimizer then scales
    the loss."""

    def __init__(
        self,
        model: keras.Model,
        ema_model: keras.Model,
        hparams: Mapping[str, float],
        augmentation: Augmentation,
        seed: int,
        jit_compile: bool = False,
    ) -> None:
        self.model, self.ema_model, self.hp = model, ema_model, dict(hparams)
        self.augmentation = augmentation
        # TF1 Adam: epsilon 1e-8, not Keras' 1e-7; constant lr (spec §3.4).
        self.optimizer = precision.with_loss_scaling(
            keras.optimizers.Adam(hparams["lr"], epsilon=1e-8)
        )
        self.optimizer.build(model.trainable_variables)
        self.augment_rng = seeds.generator(seed, "augment")
        self.mixup_rng = seeds.generator(seed, "mixup")
        self.kernels = mm.kernel_variables(model)
        self.replicas = tf.distribute.get_strategy().num_replicas_in_sync  # built in scope()
        self._step = tf.function(self.step, jit_compile=True) if jit_compile else self.step

    def train_step(self, x: Tensor, labels: Tensor, u: Tensor) -> dict[str, Tensor]:
        """One iteration; x [b, H, W, C] labeled, u [b, H, W, C] unlabeled, both in [-1, 1], not
        augmented. Returns this replica's share of each loss (and NS3L's negatives per row)."""
        # MixUp's λ first, outside XLA: Beta(α, α) is drawn through tf.random.stateless_gamma,
        # which XLA has no kernel for (StatelessRandomGammaV3).
        rows = 3 * tf.shape(x)[0]  # X, U1, U2
        lam, permutation = mm.mixup_parameters(rows, self.hp["mixup_alpha"], self.mixup_rng)
        return self._step(x, labels, u, lam, permutation)

    def step(
        self, x: Tensor, labels: Tensor, u: Tensor, lam: Tensor, permutation: Tensor
    ) -> dict[str, Tensor]:
        """The iteration given MixUp's λ' [3b] and permutation [3b] (what XLA compiles)."""
        step = tf.identity(self.optimizer.iterations)  # this iteration's index, read now
        x_aug = augment(x, self.augmentation, self.augment_rng)  # one view per labeled image
        u1, u2 = (augment(u, self.augmentation, self.augment_rng) for _ in range(2))  # two views
        q = mm.guess_labels(self.model, u1, u2, self.hp["sharpen_temperature"])  # [b, K]
        pool = tf.concat([x_aug, u1, u2], axis=0)  # [3b, ...]: X, U1, U2 in this order
        targets = tf.concat([tf.one_hot(labels, tf.shape(q)[1]), q, q], axis=0)
        mixed, targets_mixed = mm.mixup(pool, targets, lam, permutation)  # [3b, ...], [3b, K]
        with tf.GradientTape() as tape:
            logits = self.interleaved_logits(mixed)  # [3b, K], aligned with `mixed`
            losses, unweighted = self.losses(targets_mixed, logits, step)
            total = tf.add_n(list(losses.values()))
            scaled_total = precision.scaled(self.optimizer, total)  # float16: × the loss scale
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_total, variables)
        shadow = self.ema_model.trainable_variables
        if self.hp["ema_order"] == "pre_step":
            # The original creates its EMA op outside the train op's control dependency, so in
            # practice it averages the weights this step started from (docs/mixmatch.md).
            mm.ema_update(shadow, variables, self.hp["ema"])
        self.optimizer.apply(gradients, variables)
        mm.decay_kernels(self.kernels, self.hp["wd"] * self.hp["lr"])  # after the step (§3.4)
        if self.hp["ema_order"] == "post_step":
            mm.ema_update(shadow, variables, self.hp["ema"])
        stats = {"total": total, **losses, **unweighted}
        if "ns3l" in losses:  # not a loss: this replica's share of the negatives per mixed row
            negatives = negatives_below(targets_mixed, self.hp["ns3l_threshold"])
            per_row = tf.reduce_mean(tf.reduce_sum(tf.cast(negatives, tf.float32), axis=1))
            stats["count/negatives_per_row"] = per_row / self.replicas
        return stats

    def interleaved_logits(self, mixed: Tensor) -> Tensor:
        """Three passes over batches that each mix labeled and unlabeled rows; only the first
        updates BN statistics (spec §2.3, §3.3). Returns the logits in `mixed`'s row order."""
        batches = mm.interleave(tf.split(mixed, 3, axis=0))
        outputs = [
            self.model(batch, training=True, update_bn_stats=i == 0)
            for i, batch in enumerate(batches)
        ]
        return tf.concat(mm.interleave(outputs), axis=0)

    def losses(
        self, targets_mixed: Tensor, logits: Tensor, step: Tensor
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """L_X, λ_U(t)·L_U and λ1·NS3L, each this replica's share of the global value; and the
        same terms unweighted (`raw/xe`, `raw/l2u`, `raw/ns3l`)."""
        share = 1.0 / self.replicas
        rows_x = tf.shape(logits)[0] // 3
        l_x = mm.soft_cross_entropy(targets_mixed[:rows_x], logits[:rows_x])
        l_u = mm.mean_squared_error(targets_mixed[rows_x:], logits[rows_x:])
        warmup = self.hp["warmup_kimg"] * 1024 // self.hp["batch"]  # 16,384 iterations
        lambda_u = mm.lambda_u(step, self.hp["w_match"], warmup)
        losses = {"xe": share * l_x, "l2u": share * lambda_u * l_u}
        raw = {"raw/xe": share * l_x, "raw/l2u": share * l_u}  # unweighted, for TensorBoard
        if self.hp.get("ns3l_weight"):
            # Negatives from the mixed targets P' (strict < T), penalty on the network's outputs
            # for the same mixed rows, mean over all of X' ∪ U' (spec §6.1, §6.4).
            negatives = negatives_below(targets_mixed, self.hp["ns3l_threshold"])
            ns3l = tf.reduce_mean(
                ns3l_per_example(negatives, logits, numerics=self.hp["ns3l_numerics"])
            )
            ramp = lambda_u / self.hp["w_match"] if self.hp["ns3l_ramp"] else 1.0
            losses["ns3l"] = share * self.hp["ns3l_weight"] * ramp * ns3l
            raw["raw/ns3l"] = share * ns3l
        return losses, raw
