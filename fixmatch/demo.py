"""FixMatch and FixMatch + NS3L in the README's main job (scripts/demo.py) and the CPU tables.

Same code path and presets as a paper run (fixmatch.loop), CTAugment and every spec §0 row
included, with a CPU budget: the MixMatch stack's small network (16 filters, 2 blocks a scale
instead of 32 and 4) and 24 kimg (384 iterations of 64 labeled and 448 unlabeled images)
instead of 65,536, with an evaluation every kimg. The BN averages and the evaluated EMA decay
at 0.99, not 0.999, which after 384 iterations would still weigh the initial weights by 68 %.
The number is the FixMatch paper's: the median of the last 20 EMA test errors (spec §7).
"""

from fixmatch import presets
from fixmatch.config import RunConfig

# The given flags of the demo and the mini table (scripts/tables.py); the cosine follows
# train_kimg, and FixMatch has no ramp to shorten.
SMALL = {"filters": 16, "repeat": 2, "bn_momentum": 0.99, "ema": 0.99, "train_kimg": 24,
         "report_kimg": 1}  # fmt: skip


def demo_config(
    method: str, seed: int, logdir: str, kimg: int = SMALL["train_kimg"], **options
) -> RunConfig:
    """The demo's run of `method` on digits for `kimg` (24: 384 iterations), deterministic;
    `options` are RunConfig fields (xla, mixed_precision, augment_workers, ...)."""
    settings = presets.resolve(method, "digits", SMALL | {"train_kimg": kimg})
    for name in SMALL:
        settings[name] = presets.Setting(settings[name].value, "demo: fixmatch/demo.py")
    return RunConfig(
        method=method, dataset="digits", seed=seed, logdir=f"{logdir}/{method}",
        settings=settings, **({"deterministic": True} | options),
    )  # fmt: skip
