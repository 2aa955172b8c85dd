"""Supervised, NS3L and VAT+NS3L with 50 labels in the README's main job (scripts/demo.py).

Same code path as a paper run (realistic_ssl.loop), in the protocol of the paper's numbers
(`--protocol=pt`, the default; `tf` for Oliver et al.'s TF code), with two changes for a CPU
budget: a WRN-10-2 instead of WRN-28-2, and the paper's schedule scaled from 200,000 to `--steps`
steps (warm-up 1/4, lr decay at 13/20, an evaluation every 1/10). Under `tf` the BN moving
averages decay at 0.99 instead of 0.999, because a 0.999 average still weighs its initial value
by 0.999^1000 = 37% after 1,000 steps, and evaluation uses it ([PT]'s 0.9 needs no change).
Presets otherwise: lr, λ1, λ2, T.
The runs use TensorFlow's op determinism (`--deterministic` of the train command; no slower
here), so the table is the same on every run on the same kind of machine.
The table is test error at the best validation error (spec §3.5), as in the paper's Table 1.
"""

from ns3l.training.settings import scaled_settings
from realistic_ssl import presets
from realistic_ssl.config import RunConfig


def demo_config(
    method: str, steps: int, seed: int, logdir: str, protocol: str = "pt", **options
) -> RunConfig:
    """The demo's run of `method`, deterministic; `options` are RunConfig fields (xla,
    mixed_precision, ...)."""
    settings = presets.resolve(method, "digits", {}, protocol)
    # The trainers' --schedule_scale rule, then more evaluations to select the model from.
    settings = scaled_settings(settings, presets.SCHEDULE, steps / settings["train_steps"].value)
    settings["eval_every"] = presets.Setting(max(steps // 10, 1), "demo: every 1/10 of the run")
    if settings["bn_momentum"].value > 0.99:
        settings["bn_momentum"] = presets.Setting(0.99, f"demo: 0.999^{steps} keeps too much")
    return RunConfig(
        method=method, dataset="digits", seed=seed, logdir=f"{logdir}/{protocol}/{method}",
        settings=settings, protocol=protocol, wrn_depth=10, wrn_width=2,
        **({"deterministic": True} | options),
    )  # fmt: skip
