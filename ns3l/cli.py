"""What both stacks' `train` commands do with their command line."""

import sys
from collections.abc import Callable

from absl import flags

from ns3l.errors import UsageError
from ns3l.settings import RunConfig, format_config


def run_command(
    argv: list[str],
    flag_values: flags.FlagValues,
    usage: str,
    config_from_flags: Callable[[], RunConfig],
    load_train: Callable[[], Callable[[RunConfig], object]],
) -> None:
    """Parse, resolve, then train (or `--print_config`). Bad input of any kind ends in one line
    on stderr and exit status 2. `load_train` imports the training loop only when it is needed,
    so `--help` and `--print_config` answer without starting TensorFlow's devices."""
    if any(arg in ("-h", "--help", "--helpfull") for arg in argv[1:]):
        print(usage, flag_values.get_help(), sep="\n")
        return
    try:
        rest = flag_values(argv)
        if len(rest) > 1:
            raise UsageError(f"unexpected arguments: {' '.join(rest[1:])}")
        config = config_from_flags()
        if flag_values["print_config"].value:
            print(format_config(config))
            return
        load_train()(config)
    except (UsageError, flags.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
