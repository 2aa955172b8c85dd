"""One FixMatch iteration (spec fixmatch.md §5), plus NS3L on the unlabeled rows (§11).

"+ NS3L" is not a method of its own: the step adds λ1 · NS3L when `ns3l_weight` is set, reusing
the logits of the single pass (no extra forward, no extra BN update), unless the selector is the
EMA model's weak prediction, which costs one inference pass.
"""

from collections.abc import Mapping

import keras
import tensorflow as tf

from fixmatch import fixmatch as fm
from mixmatch import mixmatch as mm
from ns3l.training import precision
from ns3l.types import Tensor


class FixMatchTrainer:
    """Owns the optimizer (TF1 Nesterov momentum on the 7/16 cosine) and the EMA model;
    `train_step` is compiled once by the caller, directly or inside `strategy.run`. The inputs
    come augmented from the host (fixmatch/data.py): the step holds no random state."""

    def __init__(
        self,
        model: keras.Model,
        ema_model: keras.Model,
        hparams: Mapping[str, object],
        total_iterations: int,
        jit_compile: bool = False,
    ) -> None:
        self.model, self.ema_model, self.hp = model, ema_model, dict(hparams)
        schedule = fm.CosineDecay(self.hp["lr"], total_iterations)
        self.optimizer = precision.with_loss_scaling(
            fm.NesterovSGD(schedule, momentum=self.hp["momentum"])
        )
        self.optimizer.build(model.trainable_variables)
        self.kernels = mm.kernel_variables(model)
        self.replicas = tf.distribute.get_strategy().num_replicas_in_sync  # built in scope()
        self._step = tf.function(self.step, jit_compile=True) if jit_compile else self.step

    def train_step(
        self, x: Tensor, labels: Tensor, u_weak: Tensor, u_strong: Tensor, u_labels: Tensor
    ) -> dict[str, Tensor]:
        """x [B] labeled weak, u_weak and u_strong [μB] (row b of both from one image), all in
        [-1, 1]; `u_labels` the unlabeled rows' true classes, read only by the statistics.
        Returns this replica's share of each loss, of the mask rate and of NS3L's statistics."""
        return self._step(x, labels, u_weak, u_strong, u_labels)

    def step(self, x: Tensor, labels: Tensor, u_weak: Tensor, u_strong: Tensor, u_labels: Tensor):
        share = 1.0 / self.replicas
        rows_x, rows_u = tf.shape(x)[0], tf.shape(u_weak)[0]
        with tf.GradientTape() as tape:
            # One training-mode pass over [x; u_w; u_s]: all 960 rows update BN (§4).
            logits = self.model(tf.concat([x, u_weak, u_strong], axis=0), training=True)
            z_x, z_w, z_s = tf.split(logits, [rows_x, rows_u, rows_u], axis=0)
            l_s = tf.reduce_mean(fm.cross_entropy(labels, z_x))
            q, pseudo, mask = fm.pseudo_labels(z_w, self.hp["confidence"])
            l_u = fm.unlabeled_loss(pseudo, mask, z_s)
            norm = fm.l2_penalty(self.kernels, 1.0)  # Σ ½||W||²
            losses = {"xe": share * l_s, "xeu": share * self.hp["wu"] * l_u,
                      "wd": share * self.hp["wd"] * norm}  # fmt: skip
            raw = {"raw/xe": share * l_s, "raw/xeu": share * l_u, "raw/wd": share * norm}
            stats = {"count/mask": share * tf.reduce_mean(mask)}
            if self.hp.get("ns3l_weight"):
                ns3l, ns3l_stats = self.ns3l(q, mask, z_w, z_s, u_weak, u_labels)
                losses["ns3l"] = share * self.hp["ns3l_weight"] * ns3l
                raw["raw/ns3l"] = share * ns3l
                stats |= {k: share * v for k, v in ns3l_stats.items()}
            total = tf.add_n(list(losses.values()))
            scaled_total = precision.scaled(self.optimizer, total)
        variables = self.model.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_total, variables), variables)
        mm.ema_update(self.ema_model.trainable_variables, variables, self.hp["ema"])  # after
        return {"total": total, **losses, **raw, **stats}

    def ns3l(
        self, q: Tensor, mask: Tensor, z_w: Tensor, z_s: Tensor, u_weak: Tensor, u_labels: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """λ1's term and its statistics (spec §11 "Log"): negatives per row, the share of rows
        with any, and the share of rows whose true class is among them (1 - the negative
        labels' precision at the row level; STL-10's unlabeled images have no true class)."""
        selector = {
            "weak": lambda: q,
            "strong": lambda: tf.stop_gradient(tf.nn.softmax(tf.cast(z_s, tf.float32))),
            "ema": lambda: tf.stop_gradient(tf.nn.softmax(self.ema_logits(u_weak))),
        }[self.hp["ns3l_selector"]]()
        negatives = fm.ns3l_negatives(selector, self.hp["ns3l_threshold"])
        weights = fm.ns3l_rows(mask, self.hp["ns3l_rows"])
        views = {"strong": [z_s], "weak": [z_w], "both": [z_s, z_w]}[self.hp["ns3l_view"]]
        term = fm.ns3l_term(
            negatives, views, weights, self.hp["ns3l_normalisation"], self.hp["ns3l_numerics"]
        )
        counts = tf.reduce_sum(tf.cast(negatives, tf.float32), axis=1)
        stats = {
            "count/negatives_per_row": tf.reduce_mean(counts),
            "count/rows_with_negatives": tf.reduce_mean(tf.cast(counts > 0, tf.float32)),
            "count/true_class_among_negatives": tf.reduce_mean(
                tf.cast(tf.gather(negatives, u_labels, axis=1, batch_dims=1), tf.float32)
            ),
        }
        return term, stats

    def ema_logits(self, images: Tensor) -> Tensor:
        """The EMA model in inference mode with the raw model's BN statistics, as evaluation
        and CTAugment's probes read it (one extra pass, spec §11 selector (b))."""
        for mine, theirs in zip(self.ema_model.non_trainable_variables,
                                self.model.non_trainable_variables, strict=True):  # fmt: skip
            mine.assign(theirs)
        return tf.cast(self.ema_model(images, training=False), tf.float32)
