"""The commands' --help: every flag once, grouped per method, and the printed example runs."""

import re
import shlex

import pytest
from absl import flags

from fixmatch import train as fixmatch_train
from mixmatch import train as mixmatch_train
from ns3l.training.cli import SHARED_GROUPS, command_flags, format_help
from ns3l.training.settings import format_config
from realistic_ssl import train as realistic_train

COMMANDS = [realistic_train, mixmatch_train, fixmatch_train]
NS3L_FLAGS = {  # each command's NS3L group, in its order
    realistic_train: ["ns3l_weight", "ns3l_threshold", "ns3l_ramp", "ns3l_numerics"],
    mixmatch_train: ["ns3l_weight", "ns3l_threshold", "ns3l_ramp", "ns3l_numerics"],
    fixmatch_train: ["ns3l_weight", "ns3l_threshold", "ns3l_selector", "ns3l_view", "ns3l_rows",
                     "ns3l_normalisation", "ns3l_numerics"],
}  # fmt: skip


@pytest.mark.parametrize("module", COMMANDS, ids=lambda m: m.__name__)
def test_help_lists_every_flag_once_under_its_group(module):
    text = format_help(module.__doc__, module.FLAGS, module.HELP_GROUPS)
    listed = re.findall(r"^  --(\w+): ", text, re.M)
    assert sorted(listed) == sorted(module.FLAGS) and len(listed) == len(set(listed))
    titles = [title for title, _ in (*module.HELP_GROUPS, *SHARED_GROUPS)]
    assert re.findall(r"^(\S[^\n]*):$", text, re.M) == titles
    section = text[text.index("\nNS3L") :].split("\n\n")[0]  # the NS3L group holds its flags
    assert re.findall(r"--(\w+):", section) == NS3L_FLAGS[module]
    assert max(len(line) for line in text.splitlines()) <= 100


def test_a_flag_left_out_of_the_groups_is_caught():
    values, define = command_flags()
    define.integer("forgotten", 1, "a flag no group lists")
    with pytest.raises(ValueError, match=r"unlisted \['forgotten', 'schedule_scale'\]"):
        format_help("usage", values, ())  # --schedule_scale: listed by each stack


@pytest.mark.parametrize("module", COMMANDS, ids=lambda m: m.__name__)
def test_the_example_in_the_help_parses_and_resolves(module):
    text = format_help(module.__doc__, module.FLAGS, module.HELP_GROUPS)
    example = re.search(r"^    (python -m .*?)\n\n", text, re.M | re.S)[1]
    assert example.count("\\\n") == 1  # one shell line continuation, printed as such
    argv = shlex.split(example.replace("\\\n", " "))  # what the shell runs
    assert argv[:3] == ["python", "-m", module.__name__]
    module.FLAGS.unparse_flags()
    try:
        module.FLAGS([module.__name__, *argv[3:]])
        config = module.config_from_flags()
    finally:
        module.FLAGS.unparse_flags()
    given = dict(arg.removeprefix("--").split("=", 1) for arg in argv[3:])
    assert (config.dataset, config.method, config.logdir) == (
        given["dataset"], given["method"], given["logdir"],
    )  # fmt: skip
    assert config.value("n_labeled") == int(given["n_labeled"]) and config.seed == 1


def test_flag_errors_are_still_absl_errors():
    values, _ = command_flags()
    with pytest.raises(flags.Error):
        values(["x", "--steps_per_call=many"])


PRINT_CASES = [
    (realistic_train, ["--method=supervised"]),
    (realistic_train, ["--method=vat+em+ns3l", "--protocol=tf", "--wrn_depth=10"]),
    (realistic_train, ["--method=mt+pl+pi"]),
    (mixmatch_train, ["--method=mixmatch+ns3l", "--beta=0.5"]),
    (fixmatch_train, ["--method=fixmatch"]),
    (fixmatch_train, ["--method=fixmatch+ns3l", "--augment=randaugment", "--ns3l_view=both"]),
]


@pytest.mark.parametrize("module, argv", PRINT_CASES)
def test_print_config_shows_every_recorded_value_by_its_flag_with_a_source(module, argv):
    module.FLAGS.unparse_flags()
    try:
        module.FLAGS([module.__name__, *argv])
        config = module.config_from_flags()
    finally:
        module.FLAGS.unparse_flags()
    rows, execution = {}, ""
    for line in format_config(config).splitlines():
        name, value, *source = line.split(None, 2)
        if name == "execution":
            execution = line
        else:
            rows[name] = (value, source[0] if source else "")
    recorded = config.as_json()
    flag_of = {name: config.flag_names.get(name, name) for name in recorded}
    shown = {flag_of[name] for name in recorded if f"{name}=" not in execution}
    assert set(rows) == shown  # every value config.json records, no other
    assert set(rows) <= set(module.FLAGS)  # each by the flag that sets it
    assert all(source for _, source in rows.values())  # each with where its value comes from
    for name, value in recorded.items():
        if flag_of[name] in rows:
            assert rows[flag_of[name]][0] == str(value), name
    given = {arg.split("=")[0].removeprefix("--") for arg in argv}
    assert {name for name, (_, source) in rows.items() if source == "flag"} == given
