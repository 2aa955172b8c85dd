"""A run's resolved configuration: each hyperparameter with the source of its value.

Both stacks resolve their flags against their presets into a `RunConfig` (a stack adds its own
fields in a subclass); config.json, results.json and `--print_config` are written from it."""

import dataclasses
from dataclasses import asdict, dataclass

# May change between a run and its resumption: where data lives, how many devices run it, and
# how its steps are executed (XLA, steps per call, profiling), none of which changes the method.
MUTABLE_KEYS = (
    "data_dir", "download", "strategy", "logdir", "xla", "steps_per_call", "profile_step",
)  # fmt: skip


# Recorded in config.json by the loops, not given by a flag: the precision policy in effect
# (float32, or the mixed policy --mixed_precision picks for the machine's devices).
DERIVED_KEYS = ("precision",)


@dataclass(frozen=True)
class Setting:
    """One value and its source: a paper or spec section, "assumed: ...", or "flag"."""

    value: float | int | bool | str
    source: str


@dataclass(frozen=True)
class RunConfig:
    """Everything one run depends on, resolved; `settings` carry the source of each value."""

    method: str
    dataset: str
    seed: int
    logdir: str
    settings: dict[str, Setting]
    data_dir: str | None = None
    download: bool = False
    strategy: str = "default"
    sync_bn: bool = False  # mirrored: BN batch moments over all replicas
    deterministic: bool = False
    # How steps run (docs/performance.md): XLA, mixed precision, steps per compiled call, and the
    # step to trace for TensorBoard's profiler (0: none).
    xla: bool = False
    mixed_precision: bool = False
    steps_per_call: int = 1
    profile_step: int = 0

    def value(self, name: str) -> float | int | bool | str:
        return self.settings[name].value

    def as_json(self) -> dict:
        """The configuration as results.json and config.json record it (values only)."""
        record = {k: v for k, v in asdict(self).items() if k != "settings"}
        return record | {name: s.value for name, s in self.settings.items()}


EXECUTION = ("strategy", "sync_bn", "deterministic", "xla", "mixed_precision", "steps_per_call",
             "profile_step")  # fmt: skip


def format_config(config: RunConfig) -> str:
    """`--print_config`: the run's identity and the stack's own fields (e.g. its protocol), how
    its steps execute, then one line per setting: name, value, source."""
    skipped = {"settings", "data_dir", "download", *EXECUTION}
    fields = [f.name for f in dataclasses.fields(config) if f.name not in skipped]
    lines = [f"{k:<28}{getattr(config, k)}" for k in fields]
    lines.append(f"{'execution':<28}" + " ".join(f"{k}={getattr(config, k)}" for k in EXECUTION))
    width = max([12, *(len(str(s.value)) for s in config.settings.values())]) + 2
    lines += [f"{k:<28}{s.value!s:<{width}}{s.source}" for k, s in sorted(config.settings.items())]
    return "\n".join(lines)
