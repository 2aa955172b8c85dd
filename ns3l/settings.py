"""A resolved hyperparameter and where its value came from, as both stacks' presets record them."""

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """One value and its source: a paper or spec section, "assumed: ...", or "flag"."""

    value: float | int | bool | str
    source: str


def format_settings(header: Mapping[str, object], settings: Mapping[str, Setting]) -> str:
    """`--print_config`: the run's identity, then one line per setting: name, value, source."""
    lines = [f"{name:<28}{value}" for name, value in header.items()]
    lines += [f"{name:<28}{s.value!s:<14}{s.source}" for name, s in sorted(settings.items())]
    return "\n".join(lines)
