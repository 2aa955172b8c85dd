"""What both stacks' `train` commands do with their command line."""

import functools
import sys
import textwrap
from collections.abc import Callable
from types import SimpleNamespace

from absl import flags

from ns3l.errors import UsageError
from ns3l.training.faults import Diverged, Stopped, WorkerLost
from ns3l.training.settings import RunConfig, format_config, schedule_warnings


def command_flags() -> tuple[flags.FlagValues, SimpleNamespace]:
    """A command's own flags, with the ones both training commands take already defined, and
    `define.string/integer/float/bool/enum` bound to them. Not absl's global FLAGS: the two stacks'
    commands share flag names and must be importable in one process (the tests)."""
    values = flags.FlagValues()
    define = SimpleNamespace(
        **{
            kind: functools.partial(getattr(flags, f"DEFINE_{kind}"), flag_values=values)
            for kind in ("string", "integer", "float", "bool", "enum")
        }
    )
    define.string("data_dir", None, "TFDS data directory (default $TFDS_DATA_DIR)")
    define.bool("verbose", False, "show TensorFlow's C++ log lines (hidden by default)")
    define.bool("download", False, "let TFDS download a missing data set (needs internet)")
    define.string(
        "strategy",
        "default",
        "default (one device), mirrored (all local GPUs), or multi_worker "
        "(one process per machine, cluster from $TF_CONFIG or the Slurm job; docs/runs.md)",
    )
    define.bool(
        "sync_bn", False, "mirrored: BN batch moments over all replicas (default: per replica)"
    )
    define.bool("deterministic", False, "deterministic ops: a resumed run ends bitwise equal")
    define.bool("xla", False, "compile the train step with XLA (faster on GPUs, slower on CPUs)")
    define.bool(
        "mixed_precision", False, "float16 layers on a GPU, bfloat16 on a CPU; losses in float32"
    )
    define.integer("steps_per_call", 1, "train steps per compiled call (helps small models)")
    define.integer("profile_step", 0, "write a TensorBoard profile of this step (0: none)")
    define.bool("print_config", False, "print the resolved configuration and exit")
    define.float(
        "schedule_scale", 1.0, "shorten the whole schedule: every length and period × this "
        "factor in (0, 1], the sweep's --scale rule (0.005: the paper's 200k steps in 1k)",
    )  # fmt: skip
    return values, define


# The --help groups of the flags `command_flags` defines, after the stack's own groups; the
# stacks list --schedule_scale with their schedule.
SHARED_GROUPS = (
    ("data", ("data_dir", "download")),
    ("execution", ("strategy", "sync_bn", "deterministic", "xla", "mixed_precision",
                   "steps_per_call", "profile_step")),
    ("output", ("print_config", "verbose")),
)  # fmt: skip


def format_help(
    usage: str, values: flags.FlagValues, groups: tuple[tuple[str, tuple[str, ...]], ...]
) -> str:
    """`--help`: the module's docstring, then every flag once, under its group's title, with its
    default. `groups` are the stack's own, before `SHARED_GROUPS`; a flag in no
    group or in two is a ValueError (the tests hold both commands to it)."""
    groups = (*groups, *SHARED_GROUPS)
    listed = [name for _, names in groups for name in names]
    unlisted = sorted(set(values) - set(listed))
    twice = sorted({name for name in listed if listed.count(name) > 1})
    unknown = sorted(set(listed) - set(values))
    if unlisted or twice or unknown:
        raise ValueError(f"--help groups: unlisted {unlisted}, twice {twice}, unknown {unknown}")
    lines = [usage.rstrip(), ""]
    for title, names in groups:
        lines.append(f"{title}:")
        for name in names:
            flag = values[name]
            text = flag.help  # absl starts an enum's help with its choices, <pt|tf>
            if flag.default is not None and flag.default is not False:
                text += f" (default: {flag.default})"
            lines += textwrap.wrap(
                f"--{name}: {text}", 100, initial_indent="  ", subsequent_indent="      "
            )
        lines.append("")
    return "\n".join(lines)


def field_sources(values: flags.FlagValues, defaults: dict[str, str]) -> dict[str, str]:
    """The source of each RunConfig field a flag sets: "flag" where the command line gave it,
    else its entry of `defaults` (why that default), for `--print_config`."""
    shared = {"data_dir": "default: $TFDS_DATA_DIR, else ~/tensorflow_datasets",
              "download": "default: never download (offline-safe)"}  # fmt: skip
    return {
        name: "flag" if values[name].present else reason
        for name, reason in (shared | defaults).items()
    }


def shared_options(values: flags.FlagValues) -> dict:
    """The RunConfig fields of the flags `command_flags` defines, checked: UsageError on a bad
    value."""
    if values.steps_per_call < 1:
        raise UsageError(f"--steps_per_call={values.steps_per_call}: expected 1 or more")
    if values.profile_step < 0:
        raise UsageError(f"--profile_step={values.profile_step}: expected a step ≥ 1, or 0 (none)")
    names = ("data_dir", "download", "strategy", "sync_bn", "deterministic", "xla",
             "mixed_precision", "steps_per_call", "profile_step")  # fmt: skip
    return {name: values[name].value for name in names}


def run_command(
    argv: list[str],
    flag_values: flags.FlagValues,
    usage: str,
    config_from_flags: Callable[[], RunConfig],
    load_train: Callable[[], Callable[[RunConfig], object]],
    groups: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> None:
    """Parse, resolve, then train (or `--print_config`). Bad input of any kind ends in one line
    on stderr and exit status 2; a run stopped by a signal (checkpoint saved) in one line and
    128 + the signal's number; a diverged run in one line and 3; a multi-worker run that lost a
    worker in one line and 4. `load_train` imports the training loop only when it is needed, so
    `--help` and `--print_config` answer without starting TensorFlow's devices; `groups` are
    the stack's --help groups (`format_help`)."""
    if any(arg in ("-h", "--help", "--helpfull") for arg in argv[1:]):
        print(format_help(usage, flag_values, groups))
        return
    try:
        rest = flag_values(argv)
        if len(rest) > 1:
            raise UsageError(f"unexpected arguments: {' '.join(rest[1:])}")
        config = config_from_flags()
        for line in schedule_warnings(config):
            print(line, file=sys.stderr)
        if flag_values["print_config"].value:
            print(format_config(config))
            return
        load_train()(config)
    except (UsageError, flags.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Stopped as stopped:
        print(stopped, file=sys.stderr)
        sys.exit(128 + stopped.signum)
    except Diverged as diverged:
        print(f"error: {diverged}", file=sys.stderr)
        sys.exit(3)
    except WorkerLost as lost:
        print(f"error: {lost}", file=sys.stderr)
        sys.exit(4)
    except KeyboardInterrupt:  # before the training loop, or a second Ctrl-C
        print("interrupted: the same command resumes from the last checkpoint", file=sys.stderr)
        sys.exit(130)
