"""MixMatch presets against the papers' numbers, and the command line's resolution and errors."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mixmatch import presets, train
from ns3l.errors import UsageError
from ns3l.training.settings import format_config

ROOT = Path(__file__).parents[2]


def values(method, dataset, **given):
    return {k: s.value for k, s in presets.resolve(method, dataset, given).items()}


@pytest.mark.parametrize(
    "dataset,n_labeled,w_match,ns3l_weight",
    [("cifar10", 250, 75.0, 5.0), ("cifar10", 4000, 75.0, 10.0), ("svhn", 250, 250.0, 2.0),
     ("svhn", 1000, 250.0, 2.0), ("stl10", 1000, 50.0, 2.0)],
)  # fmt: skip
def test_paper_cells(dataset, n_labeled, w_match, ns3l_weight):
    got = values("mixmatch+ns3l", dataset, n_labeled=n_labeled)
    assert (got["w_match"], got["ns3l_weight"], got["ns3l_threshold"]) == (
        w_match, ns3l_weight, 0.05,
    )  # fmt: skip
    assert (got["mixup_alpha"], got["lr"], got["wd"], got["ema"], got["batch"]) == (
        0.75, 0.002, 0.02, 0.999, 64,
    )  # fmt: skip
    assert (got["sharpen_temperature"], got["report_kimg"], got["warmup_kimg"]) == (0.5, 64, 1024)
    assert got["n_valid"] == 1 and got["ns3l_ramp"] is False
    assert got["scales"] == (4 if dataset == "stl10" else 3)
    assert got["train_kimg"] == (16_384 if dataset == "stl10" else 65_536)


def test_plain_mixmatch_has_no_ns3l_settings():
    assert "ns3l_weight" not in values("mixmatch", "cifar10")
    with pytest.raises(UsageError, match="--ns3l_weight=3.0 is not used by --method=mixmatch"):
        presets.resolve("mixmatch", "cifar10", {"ns3l_weight": 3.0})


def test_cells_outside_the_paper_are_marked_assumed():
    settings = presets.resolve("mixmatch+ns3l", "cifar10", {"n_labeled": 1000})
    assert settings["ns3l_weight"] == presets.Setting(5.0, settings["ns3l_weight"].source)
    assert settings["ns3l_weight"].source.startswith("assumed")
    assert presets.resolve("mixmatch", "mnist", {})["w_match"].source.startswith("assumed")


def config_for(*argv):
    train.FLAGS.unparse_flags()
    train.FLAGS(["train", *argv])
    return train.config_from_flags()


def test_flags_use_the_original_names():
    config = config_for("--method=mixmatch+ns3l", "--dataset=cifar10", "--n_labeled=4000",
                        "--beta=0.5", "--seed=3")  # fmt: skip
    assert config.value("mixup_alpha") == 0.5 and config.settings["mixup_alpha"].source == "flag"
    assert config.value("ns3l_weight") == 10.0  # CIFAR-10-4000's λ1
    assert config.logdir == "runs/cifar10.3@4000-1/mixmatch+ns3l"
    assert config.iterations == 1_048_576 and config.report_every == 1024
    printed = format_config(config)
    assert re.search(r"^w_match +75\.0 +spec §3\.6 runs/table5\.sh", printed, re.M)


def test_execution_flags_reach_the_config():
    config = config_for("--method=mixmatch", "--xla", "--mixed_precision", "--steps_per_call=4",
                        "--profile_step=20")  # fmt: skip
    assert (config.xla, config.mixed_precision, config.steps_per_call) == (True, True, 4)
    assert config.profile_step == 20


def test_bad_method_is_a_one_line_error_from_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "mixmatch.train", "--method=fixmatch"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: --method='fixmatch': expected one of mixmatch, mixmatch+ns3l"


def test_the_large_model_is_a_named_option_with_its_own_wd():
    large = values_of("mixmatch", "cifar100", "large")
    assert (large["filters"], large["wd"], large["w_match"], large["n_labeled"]) == (
        135, 0.04, 150.0, 10_000,
    )  # fmt: skip
    assert presets.resolve("mixmatch", "cifar10", {}, "large")["filters"].source.startswith(
        "spec §3.6 runs/table1.sh"
    )
    assert values_of("mixmatch", "cifar10", "standard")["filters"] == 32
    with pytest.raises(UsageError, match="--model_size='huge': expected one of standard, large"):
        presets.resolve("mixmatch", "cifar10", {}, "huge")


def test_ema_order_and_ns3l_numerics_default_to_the_originals():
    got = values("mixmatch+ns3l", "cifar10")
    assert (got["ema_order"], got["ns3l_numerics"]) == ("pre_step", "reference")
    with pytest.raises(UsageError, match="--ema_order='during': expected one of pre_step"):
        presets.resolve("mixmatch", "cifar10", {"ema_order": "during"})


def values_of(method, dataset, model_size):
    return {k: s.value for k, s in presets.resolve(method, dataset, {}, model_size).items()}
