"""Every hyperparameter of a run, with its source: one preset row per paper cell, a flag overrides.

"spec" = shared/spec/realistic_ssl.md, "NS3L" = the paper (shared/paper/ns3l_paper.txt). A value the
papers do not give says "assumed" and is listed in docs/realistic_ssl.md. `--protocol` (tf or pt)
sets every value where the original TF code [TF] and its PyTorch port [PT] differ (spec §8), in
one switch. `resolve` returns what a run uses; `results.json` and `--print_config` show it with
the source of each value: a paper row, the protocol, or a flag.
"""

from ns3l.errors import UsageError, expected
from ns3l.training.settings import Setting, check_ranges

# The loss terms --method joins with "+", in the order a canonical name lists them.
TERMS = ("vat", "em", "pi", "mt", "pl", "ns3l")
PAPER_METHODS = ("supervised", "pl", "ns3l", "vat", "vat+em", "pi", "pi+ns3l", "vat+ns3l", "vat+pl")
PAPER_DATASETS = ("cifar10", "svhn", "cifar100")
# [PT] first: the NS3L loss was written against the PyTorch port, and the paper's unlabeled-set
# sizes (41,000 / 64,931 / 35,000) are [PT]'s, so Tables 1-2 most likely came from it (spec §8).
PROTOCOLS = ("pt", "tf")
DEFAULT_PROTOCOL = "pt"
# What --schedule_scale shortens (ns3l.training.settings.scale_schedule): the run's length first,
# the evaluation period last.
SCHEDULE = ("train_steps", "lr_decay_steps", "warmup_steps", "eval_every")
RAMP_ONLY = ("warmup_steps", "ramp_counting")  # the settings only an SSL term's ramp-up uses


# Every run, every method (spec §3.2-3.4, §4.7 with the NS3L paper's shorter schedule, NS3L §4.1).
COMMON = {
    "train_steps": Setting(200_000, "NS3L §4.1"),
    "lr_decay_steps": Setting(130_000, "NS3L §4.1"),
    "lr_decay_rate": Setting(0.2, "spec §3.3 (NS3L keeps Oliver's factor, assumed)"),
    "warmup_steps": Setting(50_000, "NS3L §4.1"),
    "batch_size": Setting(100, "spec §1.5: 50 labeled + 50 unlabeled"),
}
# Only when the method set has the term (spec §4.7 unless said otherwise).
TERM_DEFAULTS = {
    "pi": {"pi_weight": Setting(20.0, "spec §4.7")},
    "mt": {"mt_weight": Setting(8.0, "spec §4.7"), "mt_ema": Setting(0.95, "spec §4.3 [TF]")},
    "vat": {
        "vat_weight": Setting(0.3, "spec §4.7"),
        "vat_epsilon": Setting(6.0, "spec §4.4 (CIFAR, ZCA scale)"),
        "vat_xi": Setting(1e-6, "spec §4.4"),
    },
    "em": {"em_weight": Setting(0.1, "spec §4.5 [TF] runs/*-vat-em.yml, not ramped")},
    "pl": {
        "pl_weight": Setting(1.0, "spec §4.7"),
        "pl_threshold": Setting(0.95, "spec §4.6"),
    },
    "ns3l": {
        "ns3l_weight": Setting(1.0, "NS3L §4.4"),
        "ns3l_threshold": Setting(0.04, "NS3L §4.4"),
        "ns3l_ramp": Setting(True, "assumed: spec §5.2, ramped like the consistency weight"),
        "ns3l_numerics": Setting(
            "reference", "[NS] ns3l.py: -log(clamp(1 - Σ neg·softmax, 1e-8)) in float32 (spec §5.1)"
        ),
    },
}


def _both(setting: str, tf: object, tf_source: str, pt: object, pt_source: str) -> dict:
    return {"tf": {setting: Setting(tf, f"protocol tf: {tf_source}")},
            "pt": {setting: Setting(pt, f"protocol pt: {pt_source}")}}  # fmt: skip


# Spec §8, row by row: what each protocol sets, with where the original does it. Every value has a
# flag of the same name that overrides it.
PROTOCOL_ROWS = (
    _both("split_rule", "tf", "build_tfrecords seed 0 + build_label_map (§1.2-1.3)",
          "pt", "build_dataset, seeded (§1.2-1.3)"),
    _both("unlabeled_includes_labeled", True, "the whole train split (§1.5)",
          False, "the labeled images' complement (§1.1)"),
    _both("augment_per", "example", "flip and shift per example (§1.6)",
          "batch", "lib/transform.py, one flip and one shift per batch (§1.6)"),
    _both("bn_momentum", 0.999, "contrib batch_norm decay (§2)",
          0.9, "nn.BatchNorm2d default 0.1: wrn.py's 1e-3 never reaches it (§2)"),
    _both("bn_epsilon", 1e-3, "contrib batch_norm (§2)", 1e-5, "nn.BatchNorm2d default (§2)"),
    _both("stride2_padding", "same", "TF SAME: 0 before, 1 after (§2)",
          "symmetric", "padding=1 on both sides (§2)"),
    _both("dense_init", "glorot_truncated", "TF1 glorot_normal (§2)",
          "glorot_untruncated", "nn.init.xavier_normal_ (§2)"),
    _both("ramp_counting", "zero_based", "global step before the update (§3.4)",
          "one_based", "train.py's iteration, min(t/T, 1) (§3.4)"),
    _both("lr_decay", "staircase", "0.2^floor(t / T) (§3.3)",
          "once", "× 0.2 once, after iteration T (§3.3)"),
    _both("eval_every", 5_000, "assumed: [TF] evaluates checkpoints written every 300 s (§3.5)",
          25_000, "train.py --validation default (§3.5)"),
    _both("eval_test", "always", "evaluate_model on every checkpoint (§3.5)",
          "on_improvement", "test only when validation accuracy strictly improves (§3.5)"),
    _both("eval_train", True, "evaluate_model --split=train (§3.5)",
          False, "no train-split evaluation (§3.5)"),
)  # fmt: skip
# The rows that belong to one term, applied only when the method has it.
TERM_PROTOCOL_ROWS = {
    "pi": (_both("pi_gradient", "first", "gradient through the BN-updating pass (§4.2)",
                 "second", "gradient through the second pass (§4.2)"),),
    "pl": (_both("pl_variant", "tf", "KL(softmax(10·onehot) ‖ p) on confident rows (§4.6)",
                 "pt", "second pass: 10·onehot CE on confident rows, soft CE elsewhere (§4.6)"),),
    "em": (_both("em_pass", "adversarial", "entropy of the x + r_adv pass (§4.5)",
                 "clean", "entropy of the first pass (§4.5)"),
           _both("em_weight", 0.1, "runs/*-vat-em.yml (§4.5)",
                 0.06, "train.py --em help: 0.06 for VAT + EM (§4.5)")),
    "mt": (_both("mt_ema_schedule", "constant", "decay 0.95 from step 1 (§4.3)",
                 "warmup", "min(1 - 1/(t + 1), 0.95) (§4.3)"),
           _both("mt_ema_order", "pre_step", "EMA op among the train op's dependencies (§3.2)",
                 "post_step", "moving_average after optimizer.step() (§4.3)")),
}  # fmt: skip
# The accepted values of every setting that is a choice (its flag is an enum).
CHOICES = {
    "split_rule": ("tf", "pt"), "augment_per": ("example", "batch"),
    "stride2_padding": ("same", "symmetric"),
    "dense_init": ("glorot_truncated", "glorot_untruncated"),
    "ramp_counting": ("zero_based", "one_based"), "lr_decay": ("staircase", "once"),
    "eval_test": ("always", "on_improvement"), "pi_gradient": ("first", "second"),
    "pl_variant": ("tf", "pt"), "em_pass": ("adversarial", "clean"),
    "mt_ema_schedule": ("constant", "warmup"), "mt_ema_order": ("pre_step", "post_step"),
    "ns3l_numerics": ("reference", "stable"),
}  # fmt: skip
# Data-set rules: the split sizes, and values tied to the input scale or the class count.
DATASETS = {
    "cifar10": {
        "n_labeled": Setting(4_000, "NS3L §4.1"),
        "n_valid": Setting(5_000, "spec §1.1"),
    },
    "svhn": {
        "n_labeled": Setting(1_000, "NS3L §4.1"),
        "n_valid": Setting(7_326, "spec §1.1 (the paper's 7,325 is off by one)"),
        "vat_epsilon": Setting(1.0, "spec §4.4 ([-1, 1] scale)"),
    },
    "cifar100": {
        "n_labeled": Setting(10_000, "NS3L §4.1"),
        "n_valid": Setting(5_000, "assumed: spec §1.1, as CIFAR-10"),
        "ns3l_threshold": Setting(0.004, "NS3L §4.4: T / 10 for 10x the classes"),
    },
    "digits": {
        "n_labeled": Setting(50, "demo: 5 labels per class"),
        "n_valid": Setting(200, "assumed: demo"),
        "vat_epsilon": Setting(1.0, "assumed: [-1, 1] scale as SVHN (spec §4.4)"),
    },
}


def row(lr: float, source: str, **weights: float) -> dict[str, Setting]:
    return {"lr": Setting(lr, source)} | {k: Setting(v, source) for k, v in weights.items()}


# One row per paper cell: (--method, --dataset). CIFAR-100 reuses the CIFAR-10 values except
# where NS3L §4.4 says otherwise (NS3L §4.1: "practically no further tuning").
PRESETS: dict[tuple[str, str], dict[str, Setting]] = {}
for _dataset in PAPER_DATASETS:
    PRESETS |= {
        ("supervised", _dataset): row(3e-3, "spec §4.7"),
        ("pl", _dataset): row(3e-4, "spec §4.7"),
        ("ns3l", _dataset): row(6e-4, "NS3L §4.4", ns3l_weight=1.0),
        ("vat", _dataset): row(3e-3, "spec §4.7"),
        ("vat+em", _dataset): row(3e-3, "spec §4.7"),
        ("pi", _dataset): row(3e-4, "spec §4.7"),
        ("mt", _dataset): row(4e-4, "spec §4.7"),
        ("pi+ns3l", _dataset): row(
            6e-4,
            "assumed: NS3L §4.4 'identical hyperparameters' as NS3L; spec §5.3",
            pi_weight=20.0,
            ns3l_weight=1.0,
        ),
        ("vat+ns3l", _dataset): row(6e-4, "NS3L §4.4", vat_weight=0.3, ns3l_weight=0.3),
        ("vat+pl", _dataset): row(
            3e-3,
            "assumed: NS3L §4.4 tuned VAT+PL but reports no values; spec §5.3",
            vat_weight=0.3,
            pl_weight=1.0,
        ),
    }
PRESETS[("vat+ns3l", "cifar100")] = row(3e-3, "NS3L §4.4", vat_weight=0.6, ns3l_weight=0.3)


def parse_method(text: str) -> str:
    """`--method` as its canonical `+`-joined name (`ns3l+vat` -> `vat+ns3l`); one-line errors."""
    accepted = ("supervised", *TERMS, "or +-joined terms, e.g. vat+ns3l")
    terms = text.split("+")
    if text == "supervised":
        return text
    if not text or any(term not in TERMS for term in terms):
        raise expected("--method", text, accepted)
    if len(set(terms)) != len(terms):
        raise UsageError(f"--method={text!r}: a term appears twice")
    if "em" in terms and "vat" not in terms:
        raise UsageError(f"--method={text!r}: em is VAT's entropy term and needs vat (vat+em)")
    return "+".join(term for term in TERMS if term in terms)


def resolve(
    method: str, dataset: str, flags: dict[str, object], protocol: str = DEFAULT_PROTOCOL
) -> dict[str, Setting]:
    """The settings of one run: COMMON, the method's terms, the data set, the protocol's rows
    (spec §8), the paper row (or the documented rule when the paper has none), then the non-None
    `flags`, each with its source."""
    if protocol not in PROTOCOLS:
        raise expected("--protocol", protocol, PROTOCOLS)
    terms = [] if method == "supervised" else method.split("+")
    settings = dict(COMMON)
    for term in terms:
        settings |= TERM_DEFAULTS[term]
    for name, setting in DATASETS.get(dataset, _other_dataset()).items():
        if name in settings or name in ("n_labeled", "n_valid"):
            settings[name] = setting
    for row in (*PROTOCOL_ROWS, *(r for t in terms for r in TERM_PROTOCOL_ROWS.get(t, ()))):
        settings |= row[protocol]
    settings |= PRESETS.get((method, dataset)) or _rule(method, dataset, terms)
    if not terms:  # supervised: no consistency term, so no ramp-up to count or to show
        for name in RAMP_ONLY:
            settings.pop(name)
    for name, value in flags.items():
        if value is None:
            continue
        if name not in settings and name not in ("n_labeled", "n_valid"):
            raise UsageError(f"--{name}={value!r} is not used by --method={method}")
        if name in CHOICES and value not in CHOICES[name]:
            raise expected(f"--{name}", value, CHOICES[name])
        settings[name] = Setting(value, "flag")
    check_ranges(settings)
    return settings


def _other_dataset() -> dict[str, Setting]:
    """Digits-like defaults for a TFDS data set the papers never ran ([-1, 1] input scale)."""
    source = "assumed: a data set outside the paper, [-1, 1] scale (spec §4.4)"
    valid = "assumed: CIFAR-10's 5,000 (spec §1.1) for a data set outside the paper"
    return {"vat_epsilon": Setting(1.0, source), "n_valid": Setting(5_000, valid)}


def _rule(method: str, dataset: str, terms: list[str]) -> dict[str, Setting]:
    """A (method, data set) pair without a paper row: CIFAR-10's row for data sets outside the
    paper; otherwise NS3L's lr when NS3L is in the set, else the lr of the first term's row."""
    if (method, "cifar10") in PRESETS:
        cifar10 = PRESETS[(method, "cifar10")]
        source = f"assumed: CIFAR-10 row for {dataset} ({cifar10['lr'].source})"
        return {name: Setting(s.value, source) for name, s in cifar10.items()}
    lead = "ns3l" if "ns3l" in terms else terms[0]
    lr = PRESETS[(lead, "cifar10")]["lr"].value
    return {"lr": Setting(lr, f"assumed: no paper row for {method}; the lr of {lead}")}
