"""Every hyperparameter of a FixMatch run, with its source.

"spec" = shared/spec/fixmatch.md. The original has no run scripts (fixmatch#49): the flag
defaults of fixmatch.py hold for every data set except the paper's hidden per-data-set values
(spec §8, §10.1), which are presets here. NS3L on FixMatch is new (spec §11): its values say
"assumed" with the reasoning in docs/fixmatch.md.
"""

from fixmatch import choices
from ns3l.errors import UsageError, expected
from ns3l.training.settings import Setting, check_ranges

METHODS = ("fixmatch", "fixmatch+ns3l")
# The paper's Table 2 cells (spec §9), 5 folds each.
PAPER_CELLS = (
    ("cifar10", 40), ("cifar10", 250), ("cifar10", 4000),
    ("cifar100", 400), ("cifar100", 2500), ("cifar100", 10000),
    ("svhn", 40), ("svhn", 250), ("svhn", 1000), ("stl10", 1000),
)  # fmt: skip

COMMON = {
    "lr": Setting(0.03, "spec §6: 0.03·cos(7πk/16K)"),
    "momentum": Setting(0.9, "spec §6: Nesterov momentum 0.9"),
    "wd": Setting(5e-4, "spec §6: coupled L2, wd·Σ½||W||²"),
    "wu": Setting(1.0, "spec §5: λ_u = 1, no ramp-up"),
    "confidence": Setting(0.95, "spec §5: τ, mask max q ≥ 0.95"),
    "uratio": Setting(7, "spec §0: μ = 7 (448 unlabeled rows)"),
    "batch": Setting(64, "spec §0"),
    "ema": Setting(0.999, "spec §6: evaluation (and CTA probes) only"),
    "train_kimg": Setting(65_536, "spec §6: 2^20 iterations of 64"),
    "report_kimg": Setting(64, "spec §7: evaluation and checkpoint every 1,024 iterations"),
    "filters": Setting(32, "spec §8"),
    "repeat": Setting(4, "spec §4: the MixMatch ResNet (WRN-28)"),
    "scales": Setting(3, "spec §4: ceil(log2(32)) - 2"),
    "bn_momentum": Setting(0.999, "spec §4"),
    "n_valid": Setting(1, "spec §0: the README's and the issues' -1 holdout"),
    "augment": Setting("ctaugment", "spec §3.3: fixmatch.py always uses CTAugment"),
}
CTA_DEFAULTS = {
    "cta_depth": Setting(2, "spec §3.3: --adepth 2"),
    "cta_decay": Setting(0.99, "spec §3.3: --adecay 0.99"),
    "cta_threshold": Setting(0.8, "spec §3.3: --ath 0.80 (the class default 0.85 is unused)"),
    "cta_lag": Setting(1, "ours: rates read one update behind, exactly (the original: 0-4)"),
}
RA_DEFAULTS = {
    "ra_ranges": Setting("code", "spec §3.4: ab_fixmatch_ra.py's ops (paper: spec §3.5)"),
    "ra_probability": Setting(0.5, "spec §3.4: each op w.p. 0.5 (maintainer: 1.0, fixmatch#65)"),
}
NS3L_DEFAULTS = {
    "ns3l_weight": Setting(1.0, "assumed: λ_u's scale; spec §11 leaves λ1 to tune"),
    "ns3l_threshold": Setting(0.05, "NS3L §4.4 (T = 0.05 on MixMatch)"),
    "ns3l_selector": Setting("weak", "assumed: spec §11 (a), the q FixMatch thresholds"),
    "ns3l_view": Setting("strong", "assumed: spec §11 (a), the logits L_u penalises"),
    "ns3l_rows": Setting("unconfident", "assumed: spec §11 (ii), the rows L_u leaves out"),
    "ns3l_normalisation": Setting("batch", "assumed: spec §11, ÷ μB like L_u"),
    "ns3l_numerics": Setting("stable", "assumed: no released NS3L on FixMatch; log-sum-exps"),
}
# What --schedule_scale shortens: the run's length first, the evaluation period last.
SCHEDULE = ("train_kimg", "report_kimg")
CHOICES = {
    "augment": choices.AUGMENTS,
    "ra_ranges": choices.RA_RANGES,
    "ns3l_selector": choices.SELECTORS,
    "ns3l_view": choices.VIEWS,
    "ns3l_rows": choices.ROWS,
    "ns3l_normalisation": choices.NORMALISATIONS,
    "ns3l_numerics": choices.NUMERICS,
}
DATASETS = {
    "cifar10": {"n_labeled": Setting(250, "spec §9 (also 40 and 4000)")},
    "cifar100": {
        "n_labeled": Setting(2_500, "spec §9 (also 400 and 10000)"),
        "filters": Setting(128, "spec §8, §10.1: --filters=128 (fixmatch#26), 'WRN-28-8'"),
        "wd": Setting(1e-3, "spec §8: the paper's appendix, not the code's default"),
    },
    "svhn": {"n_labeled": Setting(250, "spec §9 (also 40 and 1000)")},
    "stl10": {
        "n_labeled": Setting(1_000, "spec §9"),
        "scales": Setting(4, "spec §8, §10.1: --scales=4 (fixmatch#34), 'WRN-37-2'"),
    },
    "digits": {
        "n_labeled": Setting(50, "demo: 5 labels per class"),
        "scales": Setting(2, "assumed: ceil(log2(16)) - 2 for 16 px digits (spec §4 rule)"),
    },
}


def parse_method(text: str) -> str:
    """`--method`: fixmatch or fixmatch+ns3l; a one-line error otherwise."""
    if text not in METHODS:
        raise expected("--method", text, METHODS)
    return text


def resolve(method: str, dataset: str, flags: dict[str, object]) -> dict[str, Setting]:
    """COMMON, the data set's values, the strong augmentation's, NS3L's for fixmatch+ns3l,
    then the non-None `flags`, each with its source."""
    augment = flags.get("augment") or COMMON["augment"].value
    if augment not in choices.AUGMENTS:
        raise expected("--augment", augment, choices.AUGMENTS)
    settings = dict(COMMON) | DATASETS.get(dataset, {})
    settings |= CTA_DEFAULTS if augment == "ctaugment" else RA_DEFAULTS
    if method == "fixmatch+ns3l":
        settings |= NS3L_DEFAULTS
    for name, value in flags.items():
        if value is None:
            continue
        if name not in settings and name != "n_labeled":
            raise UsageError(f"--{name}={value!r} is not used by --method={method} "
                             f"--augment={augment}")  # fmt: skip
        if name in CHOICES and value not in CHOICES[name]:
            raise expected(f"--{name}", value, CHOICES[name])
        settings[name] = Setting(value, "flag")
    check_ranges(settings, {})
    return settings
