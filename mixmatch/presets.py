"""Every hyperparameter of a MixMatch run, with its source (paper Tables 3-5, Figure 3).

"spec" = shared/spec/mixmatch.md, "NS3L" = the paper. The original run scripts always pass
`--beta` and `--w_match` (the code's own defaults, 0.5 and 100, are never used: spec §3.6), so the
presets hold the script values. A value neither paper gives says "assumed" (docs/mixmatch.md).
"""

from ns3l.errors import UsageError, expected
from ns3l.training.settings import Setting, check_ranges

METHODS = ("mixmatch", "mixmatch+ns3l")
MODEL_SIZES = ("standard", "large")
PAPER_CELLS = (("cifar10", 250), ("cifar10", 4000), ("svhn", 250), ("svhn", 1000), ("stl10", 1000))

COMMON = {
    "mixup_alpha": Setting(0.75, "spec §3.6 (--beta 0.75 in every NS3L-relevant script)"),
    "lr": Setting(0.002, "spec §3.4"),
    "wd": Setting(0.02, "spec §3.4: kernels × (1 - wd·lr) after each step"),
    "ema": Setting(0.999, "spec §3.4"),
    "ema_order": Setting(
        "pre_step", "the original's EMA op races the train op and reads the pre-step weights"
    ),
    "batch": Setting(64, "spec §0"),
    "sharpen_temperature": Setting(0.5, "spec §3.1 (hard-coded)"),
    "train_kimg": Setting(65_536, "spec §3.5: 2^20 iterations of 64"),
    "report_kimg": Setting(64, "spec §3.5: evaluation and checkpoint every 1,024 iterations"),
    "warmup_kimg": Setting(1_024, "spec §3.2: λ_U ramps linearly over 16,384 iterations"),
    "filters": Setting(32, "spec §2.1"),
    "repeat": Setting(4, "spec §2.1"),
    "scales": Setting(3, "spec §2.1: ceil(log2(32)) - 2"),
    "bn_momentum": Setting(0.999, "spec §2.2"),
    "n_valid": Setting(1, "spec §1.4: every paper run holds out one image"),
}
NS3L_DEFAULTS = {
    "ns3l_threshold": Setting(0.05, "NS3L §4.4"),
    "ns3l_ramp": Setting(False, "assumed: spec §6.4, constant λ1 from step 0"),
    "ns3l_numerics": Setting("reference", "[NS] ns3l.py: float32 softmax, 1 - Σ, clamp 1e-8"),
}
# What --schedule_scale shortens (ns3l.training.settings.scale_schedule): the run's length first,
# the evaluation period last.
SCHEDULE = ("train_kimg", "warmup_kimg", "report_kimg")
CHOICES = {"ema_order": ("pre_step", "post_step"), "ns3l_numerics": ("reference", "stable")}
DATASETS = {
    "cifar10": {
        "n_labeled": Setting(250, "NS3L Table 3 (also 4000)"),
        "w_match": Setting(75.0, "spec §3.6 runs/table5.sh"),
    },
    "svhn": {
        "n_labeled": Setting(250, "NS3L Table 4 (also 1000)"),
        "w_match": Setting(250.0, "spec §3.6 runs/table6.sh (svhn_noextra)"),
    },
    "stl10": {
        "n_labeled": Setting(1_000, "NS3L Table 5"),
        "w_match": Setting(50.0, "spec §3.6 runs/table2.sh"),
        "scales": Setting(4, "spec §5: runs/table2.sh passes --scales=4"),
        "train_kimg": Setting(16_384, "assumed: NS3L §4.4 trains STL-10 'significantly' shorter"),
    },
    "cifar100": {
        "n_labeled": Setting(10_000, "spec §3.6 runs/table1.sh (large model only)"),
        "w_match": Setting(150.0, "spec §3.6 runs/table1.sh"),
    },
    "digits": {
        "n_labeled": Setting(50, "demo: 5 labels per class"),
        "w_match": Setting(75.0, "assumed: the CIFAR-10 value"),
        "scales": Setting(2, "assumed: ceil(log2(16)) - 2 for 16 px digits (spec §2.1 rule)"),
    },
}
# The MixMatch paper's large model (spec §3.6 runs/table1.sh: cifar10@4000, cifar100@10000).
LARGE_MODEL = {
    "filters": Setting(135, "spec §3.6 runs/table1.sh: the large model (~26M parameters)"),
    "wd": Setting(0.04, "spec §3.6 runs/table1.sh: the large model's wd"),
}
# λ1 per paper cell (NS3L §4.4): 5 (CIFAR-10-250), 10 (CIFAR-10-4000), 2 (SVHN, STL-10).
NS3L_WEIGHTS = {
    ("cifar10", 250): 5.0,
    ("cifar10", 4000): 10.0,
    ("svhn", 250): 2.0,
    ("svhn", 1000): 2.0,
    ("stl10", 1000): 2.0,
}


def parse_method(text: str) -> str:
    """`--method`: mixmatch or mixmatch+ns3l; a one-line error otherwise."""
    if text not in METHODS:
        raise expected("--method", text, METHODS)
    return text


# Settings whose flag has the original code's name instead (mixmatch/train.py).
FLAG_NAMES = {"mixup_alpha": "beta"}


def resolve(
    method: str, dataset: str, flags: dict[str, object], model_size: str = "standard"
) -> dict[str, Setting]:
    """COMMON, the data set's values (CIFAR-10's for a data set outside the paper), the large
    model's if asked, NS3L's for mixmatch+ns3l, then the non-None `flags`, each with its
    source."""
    if model_size not in MODEL_SIZES:
        raise expected("--model_size", model_size, MODEL_SIZES)
    settings = dict(COMMON) | DATASETS.get(dataset, _other_dataset(dataset))
    if model_size == "large":
        settings |= LARGE_MODEL
    if flags.get("n_labeled") is not None:
        settings["n_labeled"] = Setting(flags["n_labeled"], "flag")
    if method == "mixmatch+ns3l":
        settings |= NS3L_DEFAULTS | {"ns3l_weight": _ns3l_weight(dataset, settings)}
    for name, value in flags.items():
        if value is None:
            continue
        if name not in settings and name != "n_labeled":
            flag = FLAG_NAMES.get(name, name)
            raise UsageError(f"--{flag}={value!r} is not used by --method={method}")
        if name in CHOICES and value not in CHOICES[name]:
            raise expected(f"--{name}", value, CHOICES[name])
        settings[name] = Setting(value, "flag")
    check_ranges(settings, FLAG_NAMES)
    return settings


def _ns3l_weight(dataset: str, settings: dict[str, Setting]) -> Setting:
    n_labeled = settings["n_labeled"].value if "n_labeled" in settings else None
    if (dataset, n_labeled) in NS3L_WEIGHTS:
        return Setting(NS3L_WEIGHTS[(dataset, n_labeled)], "NS3L §4.4")
    if dataset == "cifar10":
        weight = 10.0 if n_labeled >= 4000 else 5.0
        return Setting(weight, "assumed: the nearer CIFAR-10 cell of NS3L §4.4")
    return Setting(2.0, "assumed: λ1 = 2 as SVHN and STL-10 (NS3L §4.4)")


def _other_dataset(dataset: str) -> dict[str, Setting]:
    source = f"assumed: {dataset} is outside the paper; CIFAR-10's value"
    return {"w_match": Setting(75.0, source)}
