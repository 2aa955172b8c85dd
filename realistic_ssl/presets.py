"""Every hyperparameter of a run, with its source: one preset row per paper cell, a flag overrides.

"spec" = shared/spec/realistic_ssl.md, "NS3L" = the paper (shared/paper/ns3l_paper.txt). A value the
papers do not give says "assumed" and is listed in docs/realistic_ssl.md. `resolve` returns what a
run uses; `results.json` and `--print_config` show it with the source of each value.
"""

from ns3l.errors import UsageError, expected
from ns3l.settings import Setting

# The loss terms --method joins with "+", in the order a canonical name lists them.
TERMS = ("vat", "em", "pi", "mt", "pl", "ns3l")
PAPER_METHODS = ("supervised", "pl", "ns3l", "vat", "vat+em", "pi", "pi+ns3l", "vat+ns3l", "vat+pl")
PAPER_DATASETS = ("cifar10", "svhn", "cifar100")


# Every run, every method (spec §3.2-3.4, §4.7 with the NS3L paper's shorter schedule, NS3L §4.1).
COMMON = {
    "train_steps": Setting(200_000, "NS3L §4.1"),
    "lr_decay_steps": Setting(130_000, "NS3L §4.1"),
    "lr_decay_rate": Setting(0.2, "spec §3.3 (NS3L keeps Oliver's factor, assumed)"),
    "warmup_steps": Setting(50_000, "NS3L §4.1"),
    "batch_size": Setting(100, "spec §1.5: 50 labeled + 50 unlabeled"),
    "eval_every": Setting(5_000, "assumed: spec §3.5 leaves the cadence open"),
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
    },
}
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


def resolve(method: str, dataset: str, flags: dict[str, object]) -> dict[str, Setting]:
    """The settings of one run: COMMON, the method's terms, the data set, the paper row (or the
    documented rule when the paper has none), then the non-None `flags`, each with its source."""
    terms = [] if method == "supervised" else method.split("+")
    settings = dict(COMMON)
    for term in terms:
        settings |= TERM_DEFAULTS[term]
    for name, setting in DATASETS.get(dataset, _other_dataset()).items():
        if name in settings or name in ("n_labeled", "n_valid"):
            settings[name] = setting
    settings |= PRESETS.get((method, dataset)) or _rule(method, dataset, terms)
    for name, value in flags.items():
        if value is None:
            continue
        if name not in settings and name not in ("n_labeled", "n_valid"):
            raise UsageError(f"--{name}={value!r} is not used by --method={method}")
        settings[name] = Setting(value, "flag")
    return settings


def _other_dataset() -> dict[str, Setting]:
    """Digits-like defaults for a TFDS data set the papers never ran ([-1, 1] input scale)."""
    source = "assumed: a data set outside the paper, [-1, 1] scale (spec §4.4)"
    return {"vat_epsilon": Setting(1.0, source)}


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
