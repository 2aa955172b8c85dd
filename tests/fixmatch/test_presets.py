"""FixMatch's presets against the spec's cheat sheet (fixmatch.md §0) and per-data-set table
(§8), and the command line's resolution of them."""

import pytest

from fixmatch import presets, train


def values(method: str, dataset: str, **given) -> dict[str, object]:
    return {k: s.value for k, s in presets.resolve(method, dataset, given).items()}


# (data set, filters, scales, wd): spec §8.
PAPER_DATASETS = [("cifar10", 32, 3, 5e-4), ("cifar100", 128, 3, 1e-3), ("svhn", 32, 3, 5e-4),
                  ("stl10", 32, 4, 5e-4)]  # fmt: skip


@pytest.mark.parametrize(("dataset", "filters", "scales", "wd"), PAPER_DATASETS)
def test_every_paper_data_set_runs_the_cheat_sheets_values(dataset, filters, scales, wd):
    got = values("fixmatch", dataset)
    # §0: B 64, μ 7, τ 0.95, λ_u 1, lr 0.03, Nesterov 0.9, EMA 0.999, 2^26 images, eval 64 kimg.
    assert (got["batch"], got["uratio"], got["confidence"], got["wu"]) == (64, 7, 0.95, 1.0)
    assert (got["lr"], got["momentum"], got["ema"]) == (0.03, 0.9, 0.999)
    assert (got["train_kimg"], got["report_kimg"], got["n_valid"]) == (65_536, 64, 1)
    # §4: the MixMatch ResNet (WRN-28: 4 blocks a scale), BN momentum 0.999; §8 per data set.
    assert (got["repeat"], got["bn_momentum"]) == (4, 0.999)
    assert (got["filters"], got["scales"], got["wd"]) == (filters, scales, wd)
    # §3.3: CTAugment by default, depth 2, decay 0.99, threshold 0.80 (the flag, not 0.85).
    assert got["augment"] == "ctaugment"
    assert (got["cta_depth"], got["cta_decay"], got["cta_threshold"]) == (2, 0.99, 0.8)


def test_the_randaugment_rows_take_the_released_codes_ranges_and_probability():
    got = values("fixmatch", "cifar10", augment="randaugment")
    assert (got["ra_ranges"], got["ra_probability"]) == ("code", 0.5)  # spec §3.4
    assert not any(name.startswith("cta_") for name in got)


def test_ns3l_defaults_are_the_spec_s_suggested_options():
    got = values("fixmatch+ns3l", "cifar10")
    assert (got["ns3l_selector"], got["ns3l_view"], got["ns3l_rows"]) == (
        "weak", "strong", "unconfident",
    )  # fmt: skip
    assert (got["ns3l_normalisation"], got["ns3l_threshold"], got["ns3l_weight"]) == (
        "batch", 0.05, 1.0,
    )  # fmt: skip
    assert "ns3l_weight" not in values("fixmatch", "cifar10")


def test_the_command_runs_two_to_the_twenty_iterations_evaluated_every_1024():
    train.FLAGS.unparse_flags()
    try:
        train.FLAGS(["train", "--dataset=svhn", "--n_labeled=40", "--seed=3"])
        config = train.config_from_flags()
    finally:
        train.FLAGS.unparse_flags()
    assert config.iterations == 2**20 and config.report_every == 1024
    assert config.logdir == "runs/svhn.3@40-1/fixmatch"
