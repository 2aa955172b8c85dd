"""Presets against the paper's numbers, and the command line's resolution and errors."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from absl import flags

from ns3l.errors import UsageError
from ns3l.training.settings import format_config
from realistic_ssl import presets, train

ROOT = Path(__file__).parents[2]


def values(method, dataset, protocol="pt", **flags_given):
    settings = presets.resolve(presets.parse_method(method), dataset, flags_given, protocol)
    return {name: setting.value for name, setting in settings.items()}


@pytest.mark.parametrize("dataset", presets.PAPER_DATASETS)
def test_every_paper_cell_has_a_row_with_a_source(dataset):
    for method in presets.PAPER_METHODS:
        row = presets.PRESETS[(method, dataset)]
        assert row["lr"].source, (method, dataset)


def test_paper_values_ns3l_section_4_4():
    ns3l = values("ns3l", "cifar10")
    assert (ns3l["lr"], ns3l["ns3l_weight"], ns3l["ns3l_threshold"]) == (6e-4, 1.0, 0.04)
    assert values("ns3l", "cifar100")["ns3l_threshold"] == 0.004  # T / 10
    both = values("vat+ns3l", "cifar10")
    assert (both["lr"], both["vat_weight"], both["ns3l_weight"]) == (6e-4, 0.3, 0.3)
    c100 = values("vat+ns3l", "cifar100")
    assert (c100["lr"], c100["vat_weight"], c100["ns3l_weight"]) == (3e-3, 0.6, 0.3)
    assert c100["ns3l_threshold"] == 0.004 and c100["vat_epsilon"] == 6.0


def test_oliver_values_and_schedule():
    assert values("supervised", "cifar10")["lr"] == 3e-3
    assert values("pi", "svhn")["lr"] == 3e-4 and values("pi", "svhn")["pi_weight"] == 20.0
    vat = values("vat+em", "svhn", "tf")
    assert (vat["lr"], vat["vat_weight"], vat["vat_epsilon"], vat["em_weight"]) == (
        3e-3, 0.3, 1.0, 0.1,
    )  # fmt: skip
    assert (
        values("vat", "cifar10")["vat_epsilon"] == 6.0
        and values("vat", "cifar10")["vat_xi"] == 1e-6
    )
    pl = values("pl", "cifar100")
    assert (pl["lr"], pl["pl_weight"], pl["pl_threshold"]) == (3e-4, 1.0, 0.95)
    common = values("pi", "cifar10")
    assert (common["train_steps"], common["lr_decay_steps"], common["warmup_steps"]) == (
        200_000, 130_000, 50_000,
    )  # fmt: skip
    assert (common["n_labeled"], values("pi", "svhn")["n_valid"]) == (4000, 7326)
    assert values("pi", "cifar100")["n_labeled"] == 10_000


# Spec §8, row by row: (setting, [TF] value, [PT] value); a term's rows only with that term.
SPEC_8 = [
    ("split_rule", "tf", "pt"), ("unlabeled_includes_labeled", True, False),
    ("augment_per", "example", "batch"), ("bn_momentum", 0.999, 0.9), ("bn_epsilon", 1e-3, 1e-5),
    ("stride2_padding", "same", "symmetric"), ("dense_init", "glorot_truncated",
    "glorot_untruncated"), ("ramp_counting", "zero_based", "one_based"),
    ("lr_decay", "staircase", "once"), ("eval_every", 5_000, 25_000),
    ("eval_test", "always", "on_improvement"), ("eval_train", True, False),
    ("pi_gradient", "first", "second"), ("pl_variant", "tf", "pt"),
    ("em_pass", "adversarial", "clean"), ("em_weight", 0.1, 0.06),
    ("mt_ema_schedule", "constant", "warmup"), ("mt_ema_order", "pre_step", "post_step"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "tf_value", "pt_value"), SPEC_8)
def test_the_protocol_sets_every_row_of_spec_8_and_a_flag_overrides_it(name, tf_value, pt_value):
    method = "vat+em+pi+mt+pl"  # every term with a row of its own
    tf_settings = presets.resolve(method, "cifar10", {}, "tf")
    pt_settings = presets.resolve(method, "cifar10", {}, "pt")
    assert (tf_settings[name].value, pt_settings[name].value) == (tf_value, pt_value)
    assert tf_settings[name].source.startswith("protocol tf: ")
    assert pt_settings[name].source.startswith("protocol pt: ")
    flagged = presets.resolve(method, "cifar10", {name: tf_value}, "pt")[name]
    assert flagged == presets.Setting(tf_value, "flag")


def test_term_rows_come_only_with_their_term_and_the_default_protocol_is_pt():
    supervised = presets.resolve("supervised", "cifar10", {})
    assert supervised["split_rule"].value == "pt" and supervised["bn_momentum"].value == 0.9
    assert not {"pi_gradient", "pl_variant", "em_pass", "mt_ema_order"} & supervised.keys()
    assert presets.resolve("vat+ns3l", "cifar10", {})["ns3l_numerics"].value == "reference"
    with pytest.raises(UsageError, match="--protocol='torch': expected one of pt, tf"):
        presets.resolve("vat", "cifar10", {}, "torch")
    with pytest.raises(UsageError, match="--eval_test='sometimes': expected one of always, on_imp"):
        presets.resolve("vat", "cifar10", {"eval_test": "sometimes"})


def test_print_config_names_the_source_of_protocol_paper_and_flag_values():
    printed = format_config(
        config_for("--method=vat+em", "--dataset=cifar10", "--protocol=tf", "--bn_epsilon=1e-4")
    )
    assert re.search(r"^em_pass +adversarial +protocol tf: entropy of the x", printed, re.M)
    assert re.search(r"^lr +0\.003 +spec §4\.7", printed, re.M)
    assert re.search(r"^bn_epsilon +0\.0001 +flag", printed, re.M)
    assert "protocol                    tf" in printed


def test_only_the_terms_of_the_method_get_settings():
    assert "vat_epsilon" not in values("ns3l", "cifar10")
    assert "ns3l_threshold" not in values("vat", "cifar10")
    assert "pi_weight" not in values("supervised", "svhn")


def test_a_flag_overrides_and_says_so():
    settings = presets.resolve("vat+ns3l", "cifar10", {"ns3l_threshold": 0.05, "lr": None})
    assert settings["ns3l_threshold"] == presets.Setting(0.05, "flag")
    assert settings["lr"].source == "NS3L §4.4"


def test_combinations_outside_the_paper_are_marked_assumed():
    mt_ns3l = presets.resolve("mt+ns3l", "cifar10", {})
    assert mt_ns3l["lr"].value == 6e-4 and mt_ns3l["lr"].source.startswith("assumed")
    digits = presets.resolve("vat+ns3l", "digits", {})
    assert digits["lr"].source.startswith("assumed: CIFAR-10 row")
    assert digits["vat_epsilon"].value == 1.0


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("ns3l+vat", "vat+ns3l"),
        ("pl+vat", "vat+pl"),
        ("em+vat", "vat+em"),
        ("supervised", "supervised"),
    ],
)
def test_method_names_are_canonical(text, canonical):
    assert presets.parse_method(text) == canonical


@pytest.mark.parametrize(
    "text,message",
    [
        ("em", "--method='em': em is VAT's entropy term and needs vat (vat+em)"),
        ("vat+foo", "--method='vat+foo': expected one of supervised, vat, em, pi, mt, pl, ns3l"),
        ("pi+pi", "--method='pi+pi': a term appears twice"),
        ("supervised+ns3l", "--method='supervised+ns3l': expected one of"),
    ],
)
def test_bad_methods_are_one_line(text, message):
    with pytest.raises(UsageError) as error:
        presets.parse_method(text)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_flag_for_a_term_not_in_the_method_is_refused():
    with pytest.raises(UsageError, match="--pi_weight=3.0 is not used by --method=vat"):
        presets.resolve("vat", "cifar10", {"pi_weight": 3.0})


def config_for(*argv):
    train.FLAGS.unparse_flags()
    train.FLAGS(["train", *argv])
    return train.config_from_flags()


def test_flags_resolve_to_a_run_config():
    config = config_for("--method=ns3l+vat", "--dataset=cifar100", "--seed=3", "--vat_eps=2.5")
    assert (config.method, config.seed, config.logdir, config.protocol) == (
        "vat+ns3l", 3, "runs/cifar100.3@10000/pt/vat+ns3l", "pt",
    )  # fmt: skip
    assert config.as_json()["protocol"] == "pt" and config.as_json()["split_rule"] == "pt"
    assert config.value("vat_epsilon") == 2.5 and config.settings["vat_epsilon"].source == "flag"
    printed = format_config(config)
    assert re.search(r"^ns3l_threshold +0\.004 +NS3L §4\.4: T / 10", printed, re.M)
    assert re.search(r"^lr +0\.003 +NS3L §4\.4", printed, re.M)
    assert config.as_json()["ns3l_weight"] == 0.3


def test_execution_flags_reach_the_config():
    config = config_for("--method=ns3l", "--xla", "--mixed_precision", "--steps_per_call=10",
                        "--profile_step=50", "--sync_bn")  # fmt: skip
    assert (config.xla, config.mixed_precision, config.steps_per_call) == (True, True, 10)
    assert (config.profile_step, config.sync_bn) == (50, True)
    assert (
        "execution                   strategy=default sync_bn=True deterministic=False xla=True "
        "mixed_precision=True steps_per_call=10 profile_step=50"
    ) in format_config(config)
    plain = config_for("--method=ns3l")
    assert (plain.xla, plain.mixed_precision, plain.steps_per_call, plain.profile_step) == (
        False, False, 1, 0,
    )  # fmt: skip


def test_bad_flags_are_one_line_errors():
    with pytest.raises(UsageError, match="--method is required"):
        config_for("--dataset=svhn")
    with pytest.raises(UsageError, match="--wrn_depth=12: expected 6k \\+ 4"):
        config_for("--method=pi", "--wrn_depth=12")
    with pytest.raises(UsageError, match="--dataset='mnist' has no preset: give --n_labeled"):
        config_for("--method=pi", "--dataset=mnist")
    with pytest.raises(UsageError, match="--steps_per_call=0: expected 1 or more"):
        config_for("--method=pi", "--steps_per_call=0")
    with pytest.raises(UsageError, match="--profile_step=-3: expected a step ≥ 1, or 0"):
        config_for("--method=pi", "--profile_step=-3")
    with pytest.raises(
        flags.IllegalFlagValueError, match="value should be one of <same|symmetric>"
    ):
        config_for("--method=pi", "--stride2_padding=valid")
    with pytest.raises(UsageError, match="--pl_variant='tf' is not used by --method=pi"):
        config_for("--method=pi", "--pl_variant=tf")


def test_command_line_prints_one_line_and_exits_2():
    result = subprocess.run(
        [sys.executable, "-m", "realistic_ssl.train", "--method=em"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: --method='em': em is VAT's entropy term and needs vat (vat+em)"
    assert "Traceback" not in result.stderr
