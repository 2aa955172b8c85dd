"""What a sweep will cost, before it runs: the passes through the network each run takes
(docs/reproducing.md#compute), priced at a stated time per pass.

A pass is one forward and backward of WRN-28-2 on a batch of 100 32×32 images. The Oliver
stack's step takes 1 to 4 of them by method (docs/realistic_ssl.md, "Passes per step"); a
MixMatch iteration about 2.35 by FLOPs (3 × 64 images forward and backward, 2 × 64 forward for
the guess). A smaller network or image costs its share by FLOPs: convolution work grows with
depth (and MixMatch's scales), with the square of the width and with the pixels. A FixMatch
iteration is one pass over B(1 + 2μ) images (960 at B = 64, μ = 7: 9.6 passes), and CTAugment's
B probes forward through the EMA model (a third of a pass each 100: 0.21). The CPU price
is measured here (2 cores); the GPU price is an assumption to plan with, not a measurement
(there was no GPU). Each run also costs a fixed start (TensorFlow, tracing, the evaluations of
a short run): 30 s on the CPU here, from the demo and the mini table, 60 s assumed on a GPU."""

from ns3l.training.settings import RunConfig

PASS_SECONDS = {"cpu": 0.41, "gpu": 0.025}  # docs/reproducing.md#compute
RUN_SECONDS = {"cpu": 30.0, "gpu": 60.0}  # each run's fixed start (module docstring)
IMAGE_SIZE = {"cifar10": 32, "cifar100": 32, "svhn": 32, "stl10": 96, "digits": 16}
# Passes beyond the first that each Oliver-stack term adds (pl's depends on the protocol).
EXTRA_PASSES = {"ns3l": 1, "pi": 1, "vat": 2, "mt": 1, "em": 0}
MIXMATCH_PASSES = 2.35
FORWARD_SHARE = 1 / 3  # a forward alone, of a forward and backward


def passes_per_step(config: RunConfig) -> float:
    """WRN-28-2 passes at batch 100 (32 px) that one step of `config` costs."""
    pixels = (IMAGE_SIZE.get(config.dataset, 32) / 32) ** 2
    if "train_steps" in config.settings:  # the Oliver stack
        terms = [] if config.method == "supervised" else config.method.split("+")
        pl = 1 if getattr(config, "protocol", "pt") == "pt" else 0
        passes = 1 + sum(EXTRA_PASSES.get(term, pl) for term in terms)
        size = (config.wrn_depth - 4) / 24 * (config.wrn_width / 2) ** 2
        return passes * size * pixels * config.value("batch_size") / 100
    size = (config.value("filters") / 32) ** 2 * config.value("repeat") / 4
    size *= config.value("scales") / 3  # each scale: half the side, twice the filters
    if "uratio" in config.settings:  # FixMatch: one pass over every view, and the probes
        images = config.value("batch") * (1 + 2 * config.value("uratio"))
        if config.value("augment") == "ctaugment":
            images += config.value("batch") * FORWARD_SHARE
        return images / 100 * size * pixels
    return MIXMATCH_PASSES * size * pixels * config.value("batch") / 64


def total_steps(config: RunConfig) -> int:
    if "train_steps" in config.settings:
        return config.value("train_steps")
    return config.value("train_kimg") * 1024 // config.value("batch")


def estimate_line(configs_and_done: list[tuple[RunConfig, int]], device: str, slots: int) -> str:
    """`# estimate: 420 GPU-hours at 25 ms per pass (assumed); about 53 h on 8 GPUs`, for runs
    given with the steps each has done, `slots` running at once on `device` ("cpu", "gpu")."""
    seconds = [
        passes_per_step(config) * max(total_steps(config) - done, 0) * PASS_SECONDS[device]
        + RUN_SECONDS[device]
        for config, done in configs_and_done
    ]
    total = sum(seconds)
    loads = [0.0] * max(slots, 1)  # the scheduler's order: each run to the next free slot
    for run in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += run
    wall = max(loads)
    price = f"{PASS_SECONDS[device] * 1000:g} ms per WRN-28-2 pass"
    price += " (assumed, docs/reproducing.md#compute)" if device == "gpu" else " (measured here)"
    where = f"{slots} GPU{'s' if slots > 1 else ''}" if device == "gpu" else "the CPU"
    kind = "GPU" if device == "gpu" else "CPU"
    return (
        f"# estimate: {_hours(total)} {kind}-hours of training at {price}; about "
        f"{_duration(wall)} on {where}"
    )


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:,.0f}" if hours >= 10 else f"{hours:.2g}"


def _duration(seconds: float) -> str:
    if seconds >= 48 * 3600:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{max(seconds / 60, 1):.0f} min"
