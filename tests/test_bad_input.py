"""Every bad input a one-line error naming the value and what is accepted, before any work:
table-driven over both stacks' flags (resolved in process, as the commands resolve them)."""

import pytest

from fixmatch import presets as fixmatch_presets
from fixmatch import train as fixmatch_train
from mixmatch import presets as mixmatch_presets
from mixmatch import train as mixmatch_train
from ns3l.errors import UsageError
from ns3l.training.faults import claim_logdir
from ns3l.training.settings import RANGES, Range, scale_schedule, schedule_warnings
from realistic_ssl import presets as realistic_presets
from realistic_ssl import train as realistic_train
from realistic_ssl.demo import demo_config

CASES = [
    # (stack, flags, the whole message)
    ("realistic", ["--train_steps=-5"], "--train_steps=-5: expected an integer ≥ 1"),
    ("realistic", ["--eval_every=0"], "--eval_every=0: expected an integer ≥ 1"),
    ("realistic", ["--ns3l_threshold=1.5"], "--ns3l_threshold=1.5: expected a number in (0, 1)"),
    ("realistic", ["--ns3l_threshold=0"], "--ns3l_threshold=0.0: expected a number in (0, 1)"),
    ("realistic", ["--lr=-0.1"], "--lr=-0.1: expected a number > 0"),
    ("realistic", ["--ns3l_weight=-1"], "--ns3l_weight=-1.0: expected a number ≥ 0"),
    ("realistic", ["--batch_size=0"], "--batch_size=0: expected an integer ≥ 1"),
    ("realistic", ["--warmup_steps=-1"], "--warmup_steps=-1: expected an integer ≥ 0"),
    ("realistic", ["--bn_momentum=1"], "--bn_momentum=1.0: expected a number in [0, 1)"),
    ("realistic", ["--n_labeled=0"], "--n_labeled=0: expected an integer ≥ 1"),
    ("realistic", ["--n_valid=-2"], "--n_valid=-2: expected an integer ≥ 0"),
    ("realistic", ["--method=vat", "--vat_epsilon=0"], "--vat_epsilon=0.0: expected a number > 0"),
    (
        "realistic",
        ["--method=pl", "--pl_threshold=2"],
        "--pl_threshold=2.0: expected a number in [0, 1]",
    ),  # fmt: skip
    ("realistic", ["--lr_decay_rate=0"], "--lr_decay_rate=0.0: expected a number in (0, 1]"),
    ("realistic", ["--schedule_scale=0"], "--schedule_scale=0: expected a factor in (0, 1]"),
    (
        "realistic",
        ["--method=supervised", "--warmup_steps=10"],
        "--warmup_steps=10 is not used by --method=supervised",
    ),  # fmt: skip
    ("mixmatch", ["--schedule_scale=2"], "--schedule_scale=2: expected a factor in (0, 1]"),
    ("mixmatch", ["--train_kimg=0"], "--train_kimg=0: expected an integer ≥ 1"),
    ("mixmatch", ["--batch=-64"], "--batch=-64: expected an integer ≥ 1"),
    ("mixmatch", ["--ema=1.5"], "--ema=1.5: expected a number in [0, 1)"),
    ("mixmatch", ["--wd=-0.02"], "--wd=-0.02: expected a number ≥ 0"),
    ("mixmatch", ["--lr=0"], "--lr=0.0: expected a number > 0"),
    ("mixmatch", ["--beta=0"], "--beta=0.0: expected a number > 0"),  # MixUp's α, by its flag
    (
        "mixmatch",
        ["--method=mixmatch+ns3l", "--ns3l_threshold=1"],
        "--ns3l_threshold=1.0: expected a number in (0, 1)",
    ),  # fmt: skip
    ("fixmatch", ["--confidence=1.5"], "--confidence=1.5: expected a number in [0, 1]"),
    ("fixmatch", ["--uratio=0"], "--uratio=0: expected an integer ≥ 1"),
    ("fixmatch", ["--cta_lag=-1"], "--cta_lag=-1: expected an integer ≥ 0"),
    ("fixmatch", ["--cta_decay=1.5"], "--cta_decay=1.5: expected a number in (0, 1)"),
    ("fixmatch", ["--momentum=1"], "--momentum=1.0: expected a number in [0, 1)"),
    ("fixmatch", ["--wu=-1"], "--wu=-1.0: expected a number ≥ 0"),
    ("fixmatch", ["--augment_workers=0"], "--augment_workers=0: expected an integer ≥ 1"),
    (
        "fixmatch",
        ["--method=mixmatch"],
        "--method='mixmatch': expected one of fixmatch, fixmatch+ns3l",
    ),
    (
        "fixmatch",
        ["--steps_per_call=2"],
        "--steps_per_call=2: CTAugment updates its rates after every step, expected 1 (or "
        "--augment=randaugment)",
    ),  # fmt: skip
    (
        "fixmatch",
        ["--ns3l_weight=1"],
        "--ns3l_weight=1.0 is not used by --method=fixmatch --augment=ctaugment",
    ),  # fmt: skip
    (
        "fixmatch",
        ["--augment=randaugment", "--cta_depth=3"],
        "--cta_depth=3 is not used by --method=fixmatch --augment=randaugment",
    ),  # fmt: skip
    (
        "fixmatch",
        ["--method=fixmatch+ns3l", "--ns3l_threshold=1"],
        "--ns3l_threshold=1.0: expected a number in (0, 1)",
    ),  # fmt: skip
    ("fixmatch", ["--dataset=mnist"], "--dataset='mnist' has no preset: give --n_labeled"),
]


def resolve(stack: str, argv: list[str]):
    module = {"realistic": realistic_train, "mixmatch": mixmatch_train,
              "fixmatch": fixmatch_train}[stack]  # fmt: skip
    method = {"realistic": "--method=ns3l", "mixmatch": "--method=mixmatch",
              "fixmatch": "--method=fixmatch"}[stack]  # fmt: skip
    if not any(a.startswith("--method=") for a in argv):
        argv = [method, *argv]
    module.FLAGS.unparse_flags()
    module.FLAGS(["train", *argv])
    return module.config_from_flags()


@pytest.mark.parametrize("stack, argv, message", CASES)
def test_a_bad_value_is_one_line_naming_it_and_the_accepted_ones(stack, argv, message):
    with pytest.raises(UsageError) as raised:
        resolve(stack, argv)
    assert str(raised.value) == message


def test_good_values_at_the_bounds_are_accepted():
    config = resolve("realistic", ["--n_valid=0", "--warmup_steps=0", "--bn_momentum=0",
                                   "--ns3l_weight=0", "--lr_decay_rate=1"])  # fmt: skip
    assert (config.value("n_valid"), config.value("lr_decay_rate")) == (0, 1.0)
    assert resolve("mixmatch", ["--ema=0", "--wd=0"]).value("ema") == 0.0


def test_ranges_describe_themselves_and_judge_their_bounds():
    half_open = Range(0, 1, open=("high",))
    assert [half_open.accepts(v) for v in (-0.1, 0, 0.5, 1, True, "0.5")] == [
        False, True, True, False, False, False,
    ]  # fmt: skip
    assert Range(1, integer=True).accepts(3) and not Range(1, integer=True).accepts(2.5)
    # Every numeric preset of every stack has a range, and every paper value is inside it.
    everything = [("realistic", []), ("mixmatch", []), ("fixmatch", ["--method=fixmatch+ns3l"]),
                  ("fixmatch", ["--augment=randaugment"])]  # fmt: skip
    for stack, argv in everything:
        config = resolve(stack, argv)
        for name, setting in config.settings.items():
            value = setting.value
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert name in RANGES and RANGES[name].accepts(value), name


def test_a_dataset_outside_the_paper_gets_a_documented_validation_size():
    config = resolve("realistic", ["--dataset=mnist", "--n_labeled=100"])
    assert config.value("n_valid") == 5000
    assert config.settings["n_valid"].source.startswith("assumed: CIFAR-10's 5,000")


def test_a_logdir_that_is_a_file_is_one_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(UsageError) as raised, claim_logdir(path):
        pass
    assert str(raised.value) == f"--logdir={path} is a file: expected a directory (new, or a run's)"
    assert path.read_text() == "mine"


def test_a_short_run_that_keeps_the_papers_schedule_is_warned_in_one_line_each():
    short = resolve("realistic", ["--train_steps=1500"])
    advice = "shorten every schedule with the run: --schedule_scale (e.g. 0.01: 1% of each length)"
    assert schedule_warnings(short) == [
        "warning: --warmup_steps=50000 (the consistency ramp-up) lies beyond --train_steps=1500: "
        f"the run never gets there; {advice}",
        "warning: --lr_decay_steps=130000 (the LR decay) lies beyond --train_steps=1500: the run "
        f"never gets there; {advice}",
    ]
    supervised = resolve("realistic", ["--method=supervised", "--train_steps=1500"])
    assert [line.split(" (")[0] for line in schedule_warnings(supervised)] == [
        "warning: --lr_decay_steps=130000"
    ]  # its warm-up is not used
    scaled = ["--train_steps=1500", "--warmup_steps=375", "--lr_decay_steps=975"]
    assert schedule_warnings(resolve("realistic", scaled)) == []
    assert schedule_warnings(resolve("mixmatch", ["--train_kimg=512"]))[0].startswith(
        "warning: --warmup_kimg=1024 (the λ_U ramp-up) lies beyond --train_kimg=512"
    )
    assert schedule_warnings(resolve("mixmatch", [])) == []  # the paper's own run


def test_a_short_run_whose_averages_keep_their_start_is_warned():
    # [TF]'s BN decay 0.999 over 1,500 steps: 0.999^1500 = 22% of the initial statistics.
    tf = resolve("realistic", ["--protocol=tf", "--schedule_scale=0.0075"])
    assert schedule_warnings(tf) == [
        "warning: --bn_momentum=0.999 (the BN moving averages) still weighs its initial value by "
        "22% after the run's 1500 steps, and evaluation uses it: a run this short wants a "
        "smaller one (e.g. 0.99)"
    ]
    assert schedule_warnings(resolve("realistic", ["--schedule_scale=0.0075"])) == []  # pt: 0.9
    # MixMatch at 65,536 × 0.0004 = 26 kimg: 416 iterations of 64; 0.999^416 = 66%, 0.99^416 = 1.5%.
    short = schedule_warnings(resolve("mixmatch", ["--schedule_scale=0.0004"]))
    assert [line.split(" (")[0] for line in short] == [
        "warning: --bn_momentum=0.999", "warning: --ema=0.999",
    ]  # fmt: skip
    assert "by 66% after the run's 416 steps" in short[0] and short[0].endswith("(e.g. 0.99)")
    fixmatch = schedule_warnings(resolve("fixmatch", ["--schedule_scale=0.0004"]))
    assert [line.split(" (")[0] for line in fixmatch] == [
        "warning: --bn_momentum=0.999",
        "warning: --ema=0.999",
    ]  # fmt: skip  (the same 416 iterations of 64: FixMatch's EMA is evaluation-only too)
    assert schedule_warnings(resolve("fixmatch", ["--method=fixmatch+ns3l"])) == []


def test_schedule_scale_shortens_every_length_together_and_says_so():
    config = resolve("realistic", ["--method=vat+ns3l", "--schedule_scale=0.0075"])
    got = {name: config.value(name) for name in realistic_presets.SCHEDULE}
    # 200,000 × 0.0075 = 1,500; 130,000 → 975; 50,000 → 375; [PT]'s 25,000 → 187.5, rounded.
    assert got == {"train_steps": 1500, "lr_decay_steps": 975, "warmup_steps": 375,
                   "eval_every": 188}  # fmt: skip
    assert config.settings["warmup_steps"].source == "NS3L §4.1; scaled ×0.0075"
    assert schedule_warnings(config) == []
    assert config.value("lr") == resolve("realistic", ["--method=vat+ns3l"]).value("lr")
    supervised = resolve("realistic", ["--method=supervised", "--schedule_scale=0.5"])
    assert "warmup_steps" not in supervised.settings and supervised.value("train_steps") == 100_000
    mixmatch = resolve("mixmatch", ["--schedule_scale=0.001"])
    # 65,536 kimg → 66 (rounded), warm-up 1,024 → 1, reports every 64 → 0.064: at least 1.
    assert [mixmatch.value(n) for n in mixmatch_presets.SCHEDULE] == [66, 1, 1]


def test_one_scaling_rule_for_trainers_sweep_and_demo():
    values = {"train_steps": 200_000, "lr_decay_steps": 130_000, "warmup_steps": 0,
              "eval_every": 25_000}  # fmt: skip
    scaled = scale_schedule(values, realistic_presets.SCHEDULE, 1e-6)
    assert scaled == {"train_steps": 1, "lr_decay_steps": 1, "warmup_steps": 0, "eval_every": 1}
    demo = demo_config("vat+ns3l", 1000, seed=1, logdir="x")
    assert [demo.value(n) for n in realistic_presets.SCHEDULE] == [1000, 650, 250, 100]
    assert demo.settings["train_steps"].source == "NS3L §4.1; scaled ×0.005"
    fixmatch = resolve("fixmatch", ["--schedule_scale=0.001"])
    assert [fixmatch.value(n) for n in fixmatch_presets.SCHEDULE] == [66, 1]
