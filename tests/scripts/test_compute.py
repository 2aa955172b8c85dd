"""The sweep's cost estimate: passes per step by method, network and image, priced per pass."""

from pathlib import Path

import pytest

from scripts import sweep
from scripts.compute import PASS_SECONDS, RUN_SECONDS, estimate_line, passes_per_step
from scripts.tables import TABLES, Cell


def config(stack: str, method: str, dataset: str = "cifar10", *flags: str, protocol: str = "pt"):
    n = {"cifar10": 4000, "cifar100": 400, "svhn": 1000, "stl10": 1000, "digits": 50}[dataset]
    cell = Cell(stack, dataset, n, method, protocol=protocol if stack == "realistic_ssl" else "")
    argv = sweep.command(cell, 1, Path("x"), TABLES["table1"], python="python")
    return sweep.resolved_config((*argv, *flags))


@pytest.mark.parametrize(
    "method, protocol, passes",
    [("supervised", "pt", 1), ("pl", "tf", 1), ("pl", "pt", 2), ("ns3l", "pt", 2),
     ("pi+ns3l", "pt", 3), ("vat+em", "tf", 3), ("vat+ns3l", "pt", 4), ("vat+pl", "tf", 3),
     ("vat+pl", "pt", 4), ("mt", "pt", 2)],
)  # fmt: skip
def test_oliver_passes_follow_the_methods_table(method, protocol, passes):
    assert passes_per_step(config("realistic_ssl", method, protocol=protocol)) == passes


def test_smaller_networks_and_images_cost_their_share_of_flops():
    # WRN-10-2 at 16 px: a quarter of the depth's blocks, a quarter of the pixels.
    small = config("realistic_ssl", "vat+ns3l", "digits", "--wrn_depth=10")
    assert passes_per_step(small) == pytest.approx(4 / 16)
    assert passes_per_step(config("mixmatch", "mixmatch")) == pytest.approx(2.35)
    # STL-10: 9 times the pixels and a fourth scale: 12 times a CIFAR-10 iteration.
    assert passes_per_step(config("mixmatch", "mixmatch", "stl10")) == pytest.approx(2.35 * 12)


def test_a_fixmatch_iteration_is_one_pass_over_every_view_and_the_probes():
    # 64 labeled + 2 × 448 unlabeled = 960 images (9.6 passes of 100), CTAugment's 64 probes
    # forward only (a third each: 0.213).
    assert passes_per_step(config("fixmatch", "fixmatch")) == pytest.approx(9.6 + 64 / 300)
    assert passes_per_step(config("fixmatch", "fixmatch+ns3l")) == pytest.approx(9.6 + 64 / 300)
    randaugment = config("fixmatch", "fixmatch", "cifar10", "--augment=randaugment")
    assert passes_per_step(randaugment) == pytest.approx(9.6)  # no probes
    # CIFAR-100's 128 filters: 16 times the work.
    assert passes_per_step(config("fixmatch", "fixmatch", "cifar100")) == pytest.approx(
        16 * (9.6 + 64 / 300)
    )


def test_estimate_prices_the_remaining_steps_and_packs_runs_into_slots():
    vat_ns3l = config("realistic_ssl", "vat+ns3l")  # 200,000 steps of 4 passes
    one = 4 * 200_000 * PASS_SECONDS["gpu"] + RUN_SECONDS["gpu"]  # 20,060 s
    line = estimate_line([(vat_ns3l, 0)] * 3, "gpu", 2)
    assert line.startswith(f"# estimate: {3 * one / 3600:.2g} GPU-hours") or line.startswith(
        f"# estimate: {3 * one / 3600:,.0f} GPU-hours"
    )
    assert line.endswith(f"about {2 * one / 3600:.1f} h on 2 GPUs")  # two waves on two GPUs
    half = estimate_line([(vat_ns3l, 100_000)], "cpu", 1)  # resumed at half way, on the CPU
    cpu = 4 * 100_000 * PASS_SECONDS["cpu"] + RUN_SECONDS["cpu"]
    assert half.endswith(f"about {cpu / 3600:.1f} h on the CPU")  # 45.6 h
