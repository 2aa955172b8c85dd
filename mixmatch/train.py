r"""Train one MixMatch run (NS3L Tables 3-5, Figure 3): `python -m mixmatch.train`.

    python -m mixmatch.train --dataset=cifar10 --n_labeled=250 --seed=1 \
        --method=mixmatch+ns3l --logdir=runs/y

Flag names follow the original code where it had them (`--beta` is MixUp's α, `--w_match` is λ_U).
Every hyperparameter defaults to its preset (presets.py, with the source of each value);
`--print_config` shows the resolved values and exits. A restarted run resumes from its last
checkpoint. Only this module reads FLAGS; bad input stops here in one line."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ banner
# TensorFlow's other C++ lines: filtered unless --verbose, when run as a command (python -m, or
# the installed ns3l-* script), never when imported (ns3l/training/console.py).
if __name__ == "__main__" or os.path.basename(sys.argv[0]).startswith("ns3l-"):
    os.environ["NS3L_NATIVE_LOGS"] = "verbose" if "--verbose" in sys.argv else "filter"

import importlib
import sys

from mixmatch import presets
from mixmatch.config import RunConfig
from ns3l.errors import UsageError
from ns3l.training.cli import command_flags, field_sources, run_command, shared_options
from ns3l.training.settings import scaled_settings

FLAGS, define = command_flags()  # data_dir, download, strategy, sync_bn, deterministic, ...
define.string("method", "mixmatch", "mixmatch or mixmatch+ns3l")
define.string("dataset", "digits", "cifar10, svhn (train only), stl10, digits, or TFDS")
define.integer("seed", 1, "labeled split (1-5 in the paper), init, augmentation, MixUp")
define.string("logdir", None, "run directory; default runs/<dataset>.<seed>@<n>-1/<method>")
define.integer("n_labeled", None, "labeled images; preset 250 (CIFAR-10, SVHN), 1000 STL-10")
define.integer("n_valid", None, "validation holdout from the unlabeled pool (1)")
define.float("beta", None, "MixUp α (0.75)")
define.float("w_match", None, "λ_U: 75 CIFAR-10, 250 SVHN, 50 STL-10")
define.float("lr", None, "Adam learning rate, constant (0.002)")
define.float("wd", None, "decoupled weight decay; kernels × (1 - wd·lr) per step (0.02)")
define.float("ema", None, "EMA decay of the evaluated weights (0.999)")
define.integer("batch", None, "labeled batch = unlabeled batch (64)")
define.float("sharpen_temperature", None, "T of the guessed labels' sharpening (0.5, hard-coded)")
define.float("ns3l_weight", None, "λ1 (5 CIFAR-10-250, 10 CIFAR-10-4000, 2 SVHN, STL-10)")
define.float("ns3l_threshold", None, "NS3L threshold T on the mixed targets (0.05)")
define.bool("ns3l_ramp", None, "ramp λ1 like λ_U (default: constant)")
define.integer("train_kimg", None, "training length in 1024 labeled images (65,536)")
define.integer("report_kimg", None, "evaluation and checkpoint period in kimg (64)")
define.integer("warmup_kimg", None, "λ_U ramp length in kimg (1,024)")
define.integer("filters", None, "ResNet base width (32)")
define.integer("scales", None, "ResNet scales (3 at 32 px, 4 for STL-10)")
define.integer("repeat", None, "residual blocks per scale (4)")
define.float("bn_momentum", None, "BN moving-average decay (0.999)")
define.enum(
    "model_size",
    "standard",
    presets.MODEL_SIZES,
    "large: the MixMatch paper's large model, 135 filters and wd 0.04 (its runs/table1.sh)",
)
define.enum(
    "ema_order",
    None,
    presets.CHOICES["ema_order"],
    "the EMA averages the weights before the step (the original, racing) or after it",
)
define.enum(
    "ns3l_numerics",
    None,
    presets.CHOICES["ns3l_numerics"],
    "reference: the released float32 formula and clamp; stable: log-sum-exps",
)
define.string(
    "stl10_folds",
    None,
    "STL-10: the official fold_indices.txt (train_X.bin beside "
    "it); line --seed is the labeled set. Default: a create_split draw",
)

# Flag name -> setting name (the original's names on the command line, the papers' in code).
HPARAM_FLAGS = {
    "beta": "mixup_alpha", "w_match": "w_match", "lr": "lr", "wd": "wd", "ema": "ema",
    "batch": "batch", "ns3l_weight": "ns3l_weight", "ns3l_threshold": "ns3l_threshold",
    "ns3l_ramp": "ns3l_ramp", "train_kimg": "train_kimg", "report_kimg": "report_kimg",
    "warmup_kimg": "warmup_kimg", "filters": "filters", "scales": "scales", "repeat": "repeat",
    "bn_momentum": "bn_momentum", "ema_order": "ema_order", "ns3l_numerics": "ns3l_numerics",
    "n_labeled": "n_labeled", "n_valid": "n_valid", "sharpen_temperature": "sharpen_temperature",
}  # fmt: skip


# --help, one group per method's flags (ns3l/training/cli.py adds data, execution, output).
HELP_GROUPS = (
    ("run", ("method", "dataset", "seed", "logdir", "n_labeled", "n_valid", "stl10_folds")),
    ("MixMatch", ("beta", "w_match", "sharpen_temperature", "lr", "wd", "ema", "ema_order",
                  "batch")),
    ("schedule", ("train_kimg", "schedule_scale", "warmup_kimg", "report_kimg")),
    ("NS3L (--method=mixmatch+ns3l)", ("ns3l_weight", "ns3l_threshold", "ns3l_ramp",
                                       "ns3l_numerics")),
    ("network", ("model_size", "filters", "scales", "repeat", "bn_momentum")),
)  # fmt: skip


# Why each field outside the presets has its default (--print_config).
FIELD_DEFAULTS = {
    "method": "default: mixmatch",
    "dataset": "default: the embedded digits set (offline)",
    "seed": "default: 1 (the paper averages seeds 1-5)",
    "logdir": "default: runs/<dataset>.<seed>@<n_labeled>-<n_valid>/<method>",
    "model_size": "default: standard, the ResNet of spec §2.1 (filters and wd below)",
    "stl10_folds": "default: STL-10's labeled set drawn by create_split (spec §1)",
}


def config_from_flags() -> RunConfig:
    """Resolves the flags against the presets; UsageError on any bad value."""
    method = presets.parse_method(FLAGS.method)
    overrides = {setting: FLAGS[flag].value for flag, setting in HPARAM_FLAGS.items()}
    settings = presets.resolve(method, FLAGS.dataset, overrides, FLAGS.model_size)
    settings = scaled_settings(settings, presets.SCHEDULE, FLAGS.schedule_scale)
    if FLAGS.stl10_folds is not None and FLAGS.dataset != "stl10":
        raise UsageError(f"--stl10_folds is for --dataset=stl10, not {FLAGS.dataset!r}")
    if "n_labeled" not in settings:
        raise UsageError(f"--dataset={FLAGS.dataset!r} has no preset: give --n_labeled")
    n_labeled, n_valid = settings["n_labeled"].value, settings["n_valid"].value
    logdir = FLAGS.logdir or f"runs/{FLAGS.dataset}.{FLAGS.seed}@{n_labeled}-{n_valid}/{method}"
    return RunConfig(
        method=method, dataset=FLAGS.dataset, seed=FLAGS.seed, logdir=logdir, settings=settings,
        model_size=FLAGS.model_size, stl10_folds=FLAGS.stl10_folds,
        field_sources=field_sources(FLAGS, FIELD_DEFAULTS), flag_names=presets.FLAG_NAMES,
        **shared_options(FLAGS),
    )  # fmt: skip


def main() -> None:
    """The command (`python -m mixmatch.train`, or the installed `ns3l-mixmatch`)."""
    run_command(
        sys.argv, FLAGS, __doc__, config_from_flags,
        lambda: importlib.import_module("mixmatch.loop").train, HELP_GROUPS,
    )  # fmt: skip


if __name__ == "__main__":
    main()
