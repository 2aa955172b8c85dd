r"""Train one Oliver-stack run (NS3L Tables 1-2): `python -m realistic_ssl.train --method=vat+ns3l`.

    python -m realistic_ssl.train --dataset=cifar10 --n_labeled=4000 --seed=1 \
        --method=vat+ns3l --logdir=runs/x

Every hyperparameter defaults to its preset for (--method, --dataset) (presets.py, with the
source of each value); a flag overrides it. `--print_config` shows the resolved values and exits.
A run restarted on the same --logdir resumes from its last checkpoint. Only this module reads
FLAGS; bad input stops here in one line."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner
# TensorFlow's other C++ lines: filtered unless --verbose, when run as a command (python -m, or
# the installed ns3l-* script), never when imported (ns3l/training/console.py).
if __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("ns3l-"):
    os.environ["NS3L_NATIVE_LOGS"] = "verbose" if "--verbose" in sys.argv else "filter"


import importlib
import sys

from absl import flags

from ns3l.errors import UsageError
from ns3l.training.cli import command_flags, field_sources, run_command, shared_options
from ns3l.training.settings import scaled_settings
from realistic_ssl import presets
from realistic_ssl.config import RunConfig

FLAGS, define = command_flags()  # data_dir, download, strategy, sync_bn, deterministic, ...
define.string("method", None, "supervised, or +-joined terms: pl, pi, mt, vat, em, ns3l")
define.enum(
    "protocol", presets.DEFAULT_PROTOCOL, presets.PROTOCOLS,
    "whose values every [TF]/[PT] difference takes (spec §8; docs/realistic_ssl.md): pt, the "
    "PyTorch port the paper's numbers most likely came from, or tf, Oliver et al.'s TF code",
)  # fmt: skip
define.string("dataset", "digits", "cifar10, svhn, cifar100, digits, or a TFDS name")
define.integer("seed", 1, "labeled split (1-5 in the paper), init, augmentation, VAT")
define.string(
    "logdir", None, "run directory; default runs/<dataset>.<seed>@<n>/<protocol>/<method>"
)
define.integer("n_labeled", None, "labeled images; preset: 4000, 1000, 10000, 50 (digits)")
define.integer("n_valid", None, "validation images held out of the train set")
define.float("lr", None, "Adam learning rate")
define.integer("train_steps", None, "total steps (NS3L: 200,000)")
define.integer("lr_decay_steps", None, "staircase decay period (NS3L: 130,000)")
define.float("lr_decay_rate", None, "decay factor (0.2)")
define.integer("warmup_steps", None, "ramp-up length of the consistency weights (50,000)")
define.integer("batch_size", None, "global batch, half labeled and half unlabeled (100)")
define.integer("eval_every", None, "steps between evaluations and checkpoints (tf 5k, pt 25k)")
define.float("pi_weight", None, "max Π-model weight (20)")
define.float("mt_weight", None, "max Mean Teacher weight (8)")
define.float("mt_ema", None, "Mean Teacher EMA decay (0.95)")
define.float("vat_weight", None, "max VAT weight λ2 (0.3)")
define.float("vat_epsilon", None, "VAT ε (6.0 CIFAR, 1.0 SVHN)")
flags.DEFINE_alias("vat_eps", "vat_epsilon", flag_values=FLAGS)
define.float("vat_xi", None, "VAT ξ (1e-6)")
define.float("em_weight", None, "entropy weight β of VAT+EntMin, not ramped (tf 0.1; pt 0.06)")
define.float("pl_weight", None, "max pseudo-label weight (1.0)")
define.float("pl_threshold", None, "pseudo-label confidence (0.95)")
define.float("ns3l_weight", None, "max NS3L weight λ1 (1.0; 0.3 with VAT)")
define.float("ns3l_threshold", None, "NS3L threshold T (0.04; 0.004 for CIFAR-100)")
define.bool("ns3l_ramp", None, "ramp λ1 like the consistency weights (default: yes)")
define.enum(
    "ns3l_numerics",
    None,
    presets.CHOICES["ns3l_numerics"],
    "reference: the released float32 formula and clamp; stable: log-sum-exps",
)
define.integer("wrn_depth", 28, "WRN depth, 6k + 4 (28; smaller for tests and demos)")
define.integer("wrn_width", 2, "WRN widening factor (2)")
# Spec §8 rows: --protocol sets each; each flag overrides its row ([TF] value; [PT] value).
define.enum(
    "split_rule",
    None,
    presets.CHOICES["split_rule"],
    "labeled and validation images: tf build_label_map; pt build_dataset",
)
define.bool("unlabeled_includes_labeled", None, "unlabeled = the whole train split (tf yes; pt no)")
define.enum(
    "augment_per",
    None,
    presets.CHOICES["augment_per"],
    "flip and shift drawn per example (tf) or per batch (pt)",
)
define.float("bn_momentum", None, "BN moving-average decay (tf 0.999; pt 0.9)")
define.float("bn_epsilon", None, "BN epsilon (tf 1e-3; pt 1e-5)")
define.enum(
    "stride2_padding",
    None,
    presets.CHOICES["stride2_padding"],
    "stride-2 3x3 convs: TF SAME (tf) or 1 pixel each side (pt)",
)
define.enum(
    "dense_init",
    None,
    presets.CHOICES["dense_init"],
    "classifier kernel: truncated (tf) or untruncated (pt) Glorot normal",
)
define.enum(
    "ramp_counting",
    None,
    presets.CHOICES["ramp_counting"],
    "ramp-up at the 0-based step (tf) or the 1-based iteration (pt)",
)
define.enum(
    "lr_decay",
    None,
    presets.CHOICES["lr_decay"],
    "lr × rate every lr_decay_steps (tf) or once after them (pt)",
)
define.enum(
    "eval_test",
    None,
    presets.CHOICES["eval_test"],
    "test set at every evaluation (tf) or when valid improves (pt)",
)
define.bool("eval_train", None, "also evaluate the whole train split (tf yes; pt no)")
define.enum(
    "pi_gradient",
    None,
    presets.CHOICES["pi_gradient"],
    "Π-model gradient through the first (tf) or the second pass (pt)",
)
define.enum(
    "pl_variant",
    None,
    presets.CHOICES["pl_variant"],
    "pseudo-label loss: tf KL to softmax(10·onehot); pt second pass, CE",
)
define.enum(
    "em_pass",
    None,
    presets.CHOICES["em_pass"],
    "VAT+EntMin entropy of the adversarial (tf) or clean pass (pt)",
)
define.enum(
    "mt_ema_schedule",
    None,
    presets.CHOICES["mt_ema_schedule"],
    "Mean Teacher decay constant (tf) or min(1 - 1/(t+1), decay) (pt)",
)
define.enum(
    "mt_ema_order",
    None,
    presets.CHOICES["mt_ema_order"],
    "teacher averages the weights before (tf) or after (pt) the step",
)

HPARAM_FLAGS = (
    "lr", "train_steps", "lr_decay_steps", "lr_decay_rate", "warmup_steps", "batch_size",
    "eval_every", "pi_weight", "mt_weight", "mt_ema", "vat_weight", "vat_epsilon", "vat_xi",
    "em_weight", "pl_weight", "pl_threshold", "ns3l_weight", "ns3l_threshold", "ns3l_ramp",
    "ns3l_numerics", "n_labeled", "n_valid", "split_rule", "unlabeled_includes_labeled",
    "augment_per", "bn_momentum", "bn_epsilon", "stride2_padding", "dense_init", "ramp_counting",
    "lr_decay", "eval_test", "eval_train", "pi_gradient", "pl_variant", "em_pass",
    "mt_ema_schedule", "mt_ema_order",
)  # fmt: skip


# --help, one group per method's flags (ns3l/training/cli.py adds data, execution, output).
HELP_GROUPS = (
    ("run", ("method", "protocol", "dataset", "seed", "logdir", "n_labeled", "n_valid")),
    ("schedule and optimizer", ("train_steps", "schedule_scale", "lr", "lr_decay_steps",
                                "lr_decay_rate", "warmup_steps", "batch_size", "eval_every")),
    ("NS3L (--method=ns3l, or +ns3l)", ("ns3l_weight", "ns3l_threshold", "ns3l_ramp",
                                        "ns3l_numerics")),
    ("VAT and VAT+EntMin (vat, vat+em)", ("vat_weight", "vat_epsilon", "vat_eps", "vat_xi",
                                          "em_weight", "em_pass")),
    ("Π-model (pi)", ("pi_weight", "pi_gradient")),
    ("Mean Teacher (mt)", ("mt_weight", "mt_ema", "mt_ema_schedule", "mt_ema_order")),
    ("Pseudo-Label (pl)", ("pl_weight", "pl_threshold", "pl_variant")),
    ("network", ("wrn_depth", "wrn_width", "bn_momentum", "bn_epsilon", "stride2_padding",
                 "dense_init")),
    ("data and evaluation protocol (spec §8 rows; --protocol sets each)",
     ("split_rule", "unlabeled_includes_labeled", "augment_per", "ramp_counting", "lr_decay",
      "eval_test", "eval_train")),
)  # fmt: skip


# Why each field outside the presets has its default (--print_config).
FIELD_DEFAULTS = {
    "method": "flag",
    "dataset": "default: the embedded digits set (offline)",
    "seed": "default: 1 (the paper averages seeds 1-5)",
    "logdir": "default: runs/<dataset>.<seed>@<n_labeled>/<protocol>/<method>",
    "protocol": "default: pt, the port the paper's numbers most likely came from (spec §8)",
    "wrn_depth": "spec §2: WRN-28-2 (Oliver et al. §4)",
    "wrn_width": "spec §2: WRN-28-2 (Oliver et al. §4)",
}


def config_from_flags() -> RunConfig:
    """Resolves the flags against the presets; UsageError on any bad value."""
    if FLAGS.method is None:
        raise UsageError("--method is required: supervised, or +-joined terms, e.g. vat+ns3l")
    method = presets.parse_method(FLAGS.method)
    overrides = {name: FLAGS[name].value for name in HPARAM_FLAGS}
    settings = presets.resolve(method, FLAGS.dataset, overrides, FLAGS.protocol)
    settings = scaled_settings(settings, presets.SCHEDULE, FLAGS.schedule_scale)
    if "n_labeled" not in settings:
        raise UsageError(f"--dataset={FLAGS.dataset!r} has no preset: give --n_labeled")
    if FLAGS.wrn_depth < 10 or (FLAGS.wrn_depth - 4) % 6:
        raise UsageError(f"--wrn_depth={FLAGS.wrn_depth}: expected 6k + 4, e.g. 10, 16, 28")
    n_labeled = settings["n_labeled"].value
    run = f"{FLAGS.dataset}.{FLAGS.seed}@{n_labeled}/{FLAGS.protocol}/{method}"
    logdir = FLAGS.logdir or f"runs/{run}"
    return RunConfig(
        method=method, dataset=FLAGS.dataset, seed=FLAGS.seed, logdir=logdir, settings=settings,
        protocol=FLAGS.protocol, wrn_depth=FLAGS.wrn_depth, wrn_width=FLAGS.wrn_width,
        field_sources=field_sources(FLAGS, FIELD_DEFAULTS), **shared_options(FLAGS),
    )  # fmt: skip


def main() -> None:
    """The command (`python -m realistic_ssl.train`, or the installed `ns3l-realistic-ssl`)."""
    run_command(
        sys.argv, FLAGS, __doc__, config_from_flags,
        lambda: importlib.import_module("realistic_ssl.loop").train, HELP_GROUPS,
    )  # fmt: skip


if __name__ == "__main__":
    main()
