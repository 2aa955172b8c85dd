r"""Train one FixMatch run, or FixMatch + NS3L: `python -m fixmatch.train`.

    python -m fixmatch.train --dataset=cifar10 --n_labeled=40 --seed=1 \
        --method=fixmatch+ns3l --logdir=runs/z

Flag names follow the original fixmatch.py where it had them (`--wu`, `--confidence`, `--uratio`,
`--filters`, `--scales`). Every hyperparameter defaults to its preset (presets.py, with the
source of each value; docs/fixmatch.md); `--print_config` shows the resolved values and exits. A
restarted run resumes from its last checkpoint, CTAugment's rates included. Only this module
reads FLAGS; bad input stops here in one line."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner
# TensorFlow's other C++ lines: filtered unless --verbose, when run as a command (python -m, or
# the installed ns3l-* script), never when imported (ns3l/training/console.py).
if __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("ns3l-"):
    os.environ["NS3L_NATIVE_LOGS"] = "verbose" if "--verbose" in sys.argv else "filter"

import importlib

from fixmatch import presets
from fixmatch.config import RunConfig
from ns3l.errors import UsageError
from ns3l.training.cli import command_flags, field_sources, run_command, shared_options
from ns3l.training.settings import scaled_settings

FLAGS, define = command_flags()  # data_dir, download, strategy, sync_bn, deterministic, ...
define.string("method", "fixmatch", "fixmatch or fixmatch+ns3l")
define.string("dataset", "digits", "cifar10, cifar100, svhn (train only), stl10, digits, or TFDS")
define.integer("seed", 1, "labeled split (1-5 in the paper), init, augmentation")
define.string("logdir", None, "run directory; default runs/<dataset>.<seed>@<n>-1/<method>")
define.integer("n_labeled", None, "labeled images; preset 250 (CIFAR-10, SVHN), 2500 CIFAR-100")
define.integer("n_valid", None, "validation holdout, the head of the unlabeled pool (1)")
define.float("wu", None, "λ_u, the unlabeled loss weight (1)")
define.float("confidence", None, "τ: pseudo-labels where max q ≥ τ (0.95)")
define.integer("uratio", None, "μ: unlabeled rows per labeled row (7)")
define.float("lr", None, "SGD learning rate at step 0, cosine to lr·cos(7π/16) (0.03)")
define.float("momentum", None, "Nesterov momentum (0.9)")
define.float("wd", None, "coupled L2 weight, wd·Σ½||W||² in the loss (5e-4; 1e-3 CIFAR-100)")
define.float("ema", None, "EMA decay of the evaluated weights (0.999)")
define.integer("batch", None, "labeled batch (64)")
define.enum(
    "augment",
    None,
    presets.CHOICES["augment"],
    "strong augmentation: ctaugment (fixmatch.py) or randaugment (the paper's RA rows)",
)
define.integer("cta_depth", None, "CTAugment ops per strong image (2)")
define.float("cta_decay", None, "CTAugment rate decay (0.99)")
define.float("cta_threshold", None, "CTAugment bin threshold (0.8)")
define.integer("cta_lag", None, "steps CTAugment's rates lag the updates, exactly (1)")
define.enum(
    "ra_ranges",
    None,
    presets.CHOICES["ra_ranges"],
    "RandAugment magnitudes: the released code's, or the paper table's",
)
define.float("ra_probability", None, "RandAugment: each op's probability (0.5; paper 1)")
define.integer("augment_workers", 4, "host threads building the strong views")
define.float("ns3l_weight", None, "λ1, constant (1)")
define.float("ns3l_threshold", None, "NS3L threshold T on the selector's prediction (0.05)")
define.enum(
    "ns3l_selector",
    None,
    presets.CHOICES["ns3l_selector"],
    "whose detached prediction picks the negatives (weak)",
)
define.enum("ns3l_view", None, presets.CHOICES["ns3l_view"], "whose logits NS3L penalises (strong)")
define.enum(
    "ns3l_rows",
    None,
    presets.CHOICES["ns3l_rows"],
    "which unlabeled rows: unconfident (max q < τ), all, confident (unconfident)",
)
define.enum(
    "ns3l_normalisation",
    None,
    presets.CHOICES["ns3l_normalisation"],
    "divide by μB (batch) or by the rows taking part (active)",
)
define.enum(
    "ns3l_numerics",
    None,
    presets.CHOICES["ns3l_numerics"],
    "stable: log-sum-exps; reference: the released ns3l.py's float32 formula (MixMatch's)",
)
define.integer("train_kimg", None, "training length in 1024 labeled images (65,536)")
define.integer("report_kimg", None, "evaluation and checkpoint period in kimg (64)")
define.integer("filters", None, "ResNet base width (32; 128 CIFAR-100)")
define.integer("scales", None, "ResNet scales (3 at 32 px, 4 for STL-10)")
define.integer("repeat", None, "residual blocks per scale (4)")
define.float("bn_momentum", None, "BN moving-average decay (0.999)")
define.string("stl10_folds", None, "STL-10: the official fold_indices.txt (train_X.bin beside "
              "it); line --seed is the labeled set. Default: a create_split draw")  # fmt: skip

HPARAM_FLAGS = (
    "wu", "confidence", "uratio", "lr", "momentum", "wd", "ema", "batch", "augment",
    "cta_depth", "cta_decay", "cta_threshold", "cta_lag", "ra_ranges", "ra_probability",
    "ns3l_weight", "ns3l_threshold", "ns3l_selector", "ns3l_view", "ns3l_rows",
    "ns3l_normalisation", "ns3l_numerics", "train_kimg", "report_kimg", "filters", "scales",
    "repeat", "bn_momentum", "n_labeled", "n_valid",
)  # fmt: skip

HELP_GROUPS = (
    ("run", ("method", "dataset", "seed", "logdir", "n_labeled", "n_valid", "stl10_folds")),
    ("FixMatch", ("wu", "confidence", "uratio", "lr", "momentum", "wd", "ema", "batch")),
    ("strong augmentation", ("augment", "cta_depth", "cta_decay", "cta_threshold", "cta_lag",
                             "ra_ranges", "ra_probability", "augment_workers")),
    ("schedule", ("train_kimg", "schedule_scale", "report_kimg")),
    ("NS3L (--method=fixmatch+ns3l)", ("ns3l_weight", "ns3l_threshold", "ns3l_selector",
                                       "ns3l_view", "ns3l_rows", "ns3l_normalisation",
                                       "ns3l_numerics")),
    ("network", ("filters", "scales", "repeat", "bn_momentum")),
)  # fmt: skip

FIELD_DEFAULTS = {
    "method": "default: fixmatch",
    "dataset": "default: the embedded digits set (offline)",
    "seed": "default: 1 (the paper averages folds 1-5)",
    "logdir": "default: runs/<dataset>.<seed>@<n_labeled>-<n_valid>/<method>",
    "stl10_folds": "default: STL-10's labeled set drawn by create_split (spec §1)",
    "augment_workers": "default: 4 host threads (does not change what a run computes)",
}


def config_from_flags() -> RunConfig:
    """Resolves the flags against the presets; UsageError on any bad value."""
    method = presets.parse_method(FLAGS.method)
    overrides = {name: FLAGS[name].value for name in HPARAM_FLAGS}
    settings = presets.resolve(method, FLAGS.dataset, overrides)
    settings = scaled_settings(settings, presets.SCHEDULE, FLAGS.schedule_scale)
    if FLAGS.stl10_folds is not None and FLAGS.dataset != "stl10":
        raise UsageError(f"--stl10_folds is for --dataset=stl10, not {FLAGS.dataset!r}")
    if "n_labeled" not in settings:
        raise UsageError(f"--dataset={FLAGS.dataset!r} has no preset: give --n_labeled")
    if FLAGS.augment_workers < 1:
        raise UsageError(f"--augment_workers={FLAGS.augment_workers}: expected an integer ≥ 1")
    if settings["augment"].value == "ctaugment" and FLAGS.steps_per_call != 1:
        raise UsageError(
            f"--steps_per_call={FLAGS.steps_per_call}: CTAugment updates its rates after every "
            "step, expected 1 (or --augment=randaugment)"
        )
    n_labeled, n_valid = settings["n_labeled"].value, settings["n_valid"].value
    logdir = FLAGS.logdir or f"runs/{FLAGS.dataset}.{FLAGS.seed}@{n_labeled}-{n_valid}/{method}"
    return RunConfig(
        method=method, dataset=FLAGS.dataset, seed=FLAGS.seed, logdir=logdir, settings=settings,
        stl10_folds=FLAGS.stl10_folds, augment_workers=FLAGS.augment_workers,
        field_sources=field_sources(FLAGS, FIELD_DEFAULTS), **shared_options(FLAGS),
    )  # fmt: skip


def main() -> None:
    """The command (`python -m fixmatch.train`, or the installed `ns3l-fixmatch`)."""
    run_command(
        sys.argv, FLAGS, __doc__, config_from_flags,
        lambda: importlib.import_module("fixmatch.loop").train, HELP_GROUPS,
    )  # fmt: skip


if __name__ == "__main__":
    main()
