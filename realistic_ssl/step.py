"""The one train step of the Oliver et al. stack, for any set of loss terms (spec §3.1, §5.1).

`terms` are the `+`-joined parts of --method (presets.TERMS); "+ NS3L" is not a method of its own:
the step adds the term when `ns3l` is in the set. Every term is a per-example penalty, masked to
its rows and divided by the global batch (100), never by the size of its half (spec §9.5).
Where [TF] and [PT] differ (spec §8), `hparams` names the variant (presets.PROTOCOL_ROWS).
"""

from collections.abc import Mapping

import keras
import tensorflow as tf

from ns3l.loss import negatives_below, ns3l_per_example
from ns3l.training import precision, seeds
from ns3l.types import Tensor
from realistic_ssl.methods import mean_teacher, pi_model, pseudo_label, vat
from realistic_ssl.methods.supervised import cross_entropy
from realistic_ssl.schedules import learning_rate, rampup


class RealisticSSLTrainer:
    """Owns the optimizer, VAT's random generator (stream "vat") and (for `mt`) the teacher;
    `train_step` is compiled once by the caller (loop.py), directly or inside `strategy.run`.
    With `jit_compile` the whole step of one replica is compiled by XLA. Build it inside
    `precision.policy_scope` under a float16 policy: the optimizer then scales the loss."""

    def __init__(
        self,
        wrn: keras.Model,
        terms: tuple[str, ...],
        hparams: Mapping[str, float],
        global_batch: int,
        seed: int,
        teacher: keras.Model | None = None,
        jit_compile: bool = False,
    ) -> None:
        self.wrn, self.teacher, self.hp = wrn, teacher, dict(hparams)
        self.terms = tuple(term for term in terms if term != "supervised")  # the SSL terms
        self.global_batch = global_batch
        schedule = learning_rate(
            hparams["lr"], hparams["lr_decay_steps"], hparams["lr_decay_rate"], hparams["lr_decay"]
        )
        # Adam as TF1/PyTorch: epsilon 1e-8, not Keras' 1e-7 (spec §3.2, §9.11).
        adam = keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        self.optimizer = precision.with_loss_scaling(adam)
        self.optimizer.build(wrn.trainable_variables)
        self.vat_rng = seeds.generator(seed, "vat")  # VAT's random directions
        self._step = tf.function(self.step, jit_compile=True) if jit_compile else self.step

    def train_step(self, x: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """One step; x [B, H, W, C] preprocessed, pre-augmentation; labels [B], -1 on unlabeled
        rows. Returns this replica's share of each loss and the NS3L counts."""
        return self._step(x, labels)

    def step(self, x: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """`train_step` as plain TensorFlow ops (what XLA compiles under `jit_compile`)."""
        is_unlabeled = labels < 0
        step = tf.identity(self.optimizer.iterations)  # this step's index, read now
        ramp = self.ramp(step)
        with tf.GradientTape() as tape:
            logits = self.wrn(x, training=True)  # the only pass that updates BN statistics
            xent = cross_entropy(labels, logits)  # 0 on unlabeled rows (label -1)
            losses = {"xe": self.batch_mean(xent, where=~is_unlabeled)}
            unweighted = {"raw/xe": losses["xe"]}
            weights = self.weights(ramp)
            for term, penalty in self.penalties(x, logits).items():
                unweighted[f"raw/{term}"] = self.batch_mean(penalty, where=is_unlabeled)
                losses[term] = weights[term] * unweighted[f"raw/{term}"]
            total = tf.add_n(list(losses.values()))
            scaled_total = precision.scaled(self.optimizer, total)  # float16: × the loss scale
        variables = self.wrn.trainable_variables
        gradients = tape.gradient(scaled_total, variables)
        if "mt" in self.terms and self.hp["mt_ema_order"] == "pre_step":
            self.update_teacher(step)  # [TF]: the EMA op runs before the update it waits on
        self.optimizer.apply(gradients, variables)
        if "mt" in self.terms and self.hp["mt_ema_order"] == "post_step":
            self.update_teacher(step)  # [PT]: after optimizer.step()
        stats = {"total": total, **losses, **unweighted}  # each sums over replicas to its total
        if "ns3l" in self.terms:
            stats |= self.ns3l_stats(logits, labels)
        return stats

    def ramp(self, step: Tensor) -> Tensor:
        """The consistency ramp-up at the 0-based `step`, counted as the protocol counts (1 for
        supervised, which has none)."""
        if "warmup_steps" not in self.hp:
            return tf.constant(1.0)
        return rampup(step, self.hp["warmup_steps"], self.hp["ramp_counting"])

    def weights(self, ramp: Tensor | float) -> dict[str, Tensor | float]:
        """Each SSL term's weight at a step whose ramp-up is `ramp`: its maximum, ramped except
        VAT+EntMin's entropy term (never ramped) and NS3L without `ns3l_ramp`."""
        weights = {}
        for term in self.terms:
            ramped = term != "em" and (term != "ns3l" or self.hp["ns3l_ramp"])
            weights[term] = self.hp[f"{term}_weight"] * (ramp if ramped else 1.0)
        return weights

    def update_teacher(self, step: Tensor) -> None:
        """One EMA update of the Mean Teacher, the (step + 1)-th (spec §4.3)."""
        decay = mean_teacher.ema_decay(step + 1, self.hp["mt_ema"], self.hp["mt_ema_schedule"])
        student = self.wrn.trainable_variables
        mean_teacher.update_teacher(self.teacher.trainable_variables, student, decay)

    def penalties(self, x: Tensor, logits: Tensor) -> dict[str, Tensor]:
        """Per-example [B] penalty of every SSL term in the set; the step masks them to U."""
        hp, penalties = self.hp, {}
        if "vat" in self.terms:
            logits_adv = vat.adversarial_logits(
                self.wrn, x, logits, hp["vat_epsilon"], hp["vat_xi"], self.vat_rng
            )
            penalties["vat"] = vat.consistency(logits_adv, logits)
            if "em" in self.terms:  # [TF] the adversarial pass, [PT] the clean one (spec §4.5)
                penalties["em"] = vat.entropy(
                    logits_adv if hp["em_pass"] == "adversarial" else logits
                )
        if "pi" in self.terms:
            penalties["pi"] = pi_model.consistency(self.wrn, x, logits, hp["pi_gradient"])
        if "mt" in self.terms:
            penalties["mt"] = mean_teacher.consistency(self.teacher, x, logits)
        if "pl" in self.terms and hp["pl_variant"] == "tf":
            penalties["pl"] = pseudo_label.consistency(logits, hp["pl_threshold"])
        elif "pl" in self.terms:
            penalties["pl"] = pseudo_label.second_view_consistency(
                self.wrn, x, logits, hp["pl_threshold"]
            )
        if "ns3l" in self.terms:
            # Negatives from the first pass's detached probabilities, the loss on a second view:
            # fresh augmentation, batch statistics, no BN update, gradient (spec §5.1).
            second_view = self.wrn(x, training=True, update_bn_stats=False)
            negatives = negatives_below(tf.nn.softmax(logits), hp["ns3l_threshold"])
            penalties["ns3l"] = ns3l_per_example(
                negatives, second_view, numerics=hp["ns3l_numerics"]
            )
        return penalties

    def batch_mean(self, values: Tensor, where: Tensor) -> Tensor:
        """Σ_{rows in `where`} values / global batch: this replica's share of the batch mean."""
        return tf.reduce_sum(tf.where(where, values, 0.0)) / self.global_batch

    def ns3l_stats(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Sums over this replica for the NS3L diagnostics (train.py divides them after the
        cross-replica sum): negatives per unlabeled row, and on labeled rows how many chosen
        negatives are the true class."""
        chosen = negatives_below(tf.nn.softmax(logits), self.hp["ns3l_threshold"])
        negatives = tf.cast(chosen, tf.float32)
        per_row = tf.reduce_sum(negatives, axis=1)
        is_labeled = labels >= 0
        true_class = tf.one_hot(tf.maximum(labels, 0), tf.shape(logits)[1])
        return {
            "count/negatives_u": tf.reduce_sum(tf.where(is_labeled, 0.0, per_row)),
            "count/rows_u": tf.reduce_sum(tf.cast(~is_labeled, tf.float32)),
            "count/negatives_l": tf.reduce_sum(tf.where(is_labeled, per_row, 0.0)),
            "count/true_negatives_l": tf.reduce_sum(
                tf.where(is_labeled, tf.reduce_sum(negatives * true_class, axis=1), 0.0)
            ),
        }
