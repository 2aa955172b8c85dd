"""A run's resolved configuration: each hyperparameter with the source of its value.

Both stacks resolve their flags against their presets into a `RunConfig` (a stack adds its own
fields in a subclass); config.json, results.json and `--print_config` are written from it."""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ns3l.errors import UsageError

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
class Range:
    """The values a numeric setting accepts: `low` and `high` bounds (None: unbounded), each
    closed unless `open` names it, and whether it must be an integer."""

    low: float | None = None
    high: float | None = None
    open: tuple[str, ...] = ()  # "low", "high"
    integer: bool = False

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not float(value).is_integer():
            return False
        low_ok = self.low is None or (value > self.low if "low" in self.open else value >= self.low)
        high = self.high
        high_ok = high is None or (value < high if "high" in self.open else value <= high)
        return low_ok and high_ok

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if "low" in self.open else "[", ")" if "high" in self.open else "]"
            return f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{kind} {'>' if 'low' in self.open else '≥'} {self.low:g}"
        return f"{kind} {'<' if 'high' in self.open else '≤'} {self.high:g}"


COUNT, NON_NEGATIVE_INT = Range(1, integer=True), Range(0, integer=True)
POSITIVE, NON_NEGATIVE = Range(0, open=("low",)), Range(0)
FRACTION, DECAY = Range(0, 1, open=("low", "high")), Range(0, 1, open=("high",))
# Every numeric setting of both stacks and what it accepts: checked when a run's configuration is
# resolved, so a bad flag is one line before anything is built (`check_ranges`).
RANGES = {
    **dict.fromkeys(("batch_size", "batch", "train_steps", "train_kimg", "eval_every",
                     "report_kimg", "n_labeled", "filters", "repeat", "scales", "uratio",
                     "cta_depth"), COUNT),
    "cta_lag": NON_NEGATIVE_INT,
    **dict.fromkeys(("n_valid", "warmup_steps", "lr_decay_steps", "warmup_kimg"),
                    NON_NEGATIVE_INT),
    **dict.fromkeys(("lr", "vat_epsilon", "vat_xi", "sharpen_temperature", "mixup_alpha",
                     "bn_epsilon"), POSITIVE),
    **dict.fromkeys(("ns3l_weight", "vat_weight", "pi_weight", "mt_weight", "pl_weight",
                     "em_weight", "w_match", "wd", "wu"), NON_NEGATIVE),
    **dict.fromkeys(("confidence", "cta_threshold", "ra_probability"), Range(0, 1)),
    "momentum": Range(0, 1, open=("high",)),
    "cta_decay": FRACTION,
    "ns3l_threshold": FRACTION,  # a probability strictly inside (0, 1): Algorithm 1's T
    "pl_threshold": Range(0, 1),
    "lr_decay_rate": Range(0, 1, open=("low",)),
    **dict.fromkeys(("bn_momentum", "ema", "mt_ema"), DECAY),
}  # fmt: skip


def check_ranges(settings: dict[str, Setting], flag_names: dict[str, str] | None = None) -> None:
    """A one-line UsageError naming the first setting whose value `RANGES` does not accept, by
    its flag (`flag_names`: setting -> flag, where the two differ)."""
    for name, setting in settings.items():
        accepted = RANGES.get(name)
        if accepted is not None and not accepted.accepts(setting.value):
            flag = (flag_names or {}).get(name, name)
            raise UsageError(f"--{flag}={setting.value!r}: expected {accepted.describe()}")


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
    # For --print_config: the source of each field that is not a setting (method, dataset, the
    # network size, ...), and the flag of each setting whose flag has another name (MixMatch's
    # --beta). Neither is recorded.
    field_sources: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)
    flag_names: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    def value(self, name: str) -> float | int | bool | str:
        return self.settings[name].value

    def as_json(self) -> dict:
        """The configuration as results.json and config.json record it (values only)."""
        unrecorded = ("settings", "field_sources", "flag_names")
        record = {k: v for k, v in asdict(self).items() if k not in unrecorded}
        return record | {name: s.value for name, s in self.settings.items()}


def scale_schedule(
    values: Mapping[str, int], schedule: Sequence[str], scale: float
) -> dict[str, int]:
    """The one rule that shortens a run (the trainers' --schedule_scale, the sweep's --scale, the
    demo): every value of `schedule` (a stack's run length first, its evaluation period last)
    times `scale`, rounded, at least 1 (a 0, no warm-up, stays 0), with the period at most the
    run's length so a short run still evaluates. The paper's 200,000 steps × 0.005: 1,000 steps,
    warm-up 250, LR decay at 650."""
    schedule = [name for name in schedule if name in values]  # supervised has no warm-up
    scaled = {name: max(1, round(values[name] * scale)) if values[name] else 0 for name in schedule}
    length, period = schedule[0], schedule[-1]
    scaled[period] = min(scaled[period], scaled[length])
    return scaled


def scaled_settings(
    settings: dict[str, Setting], schedule: Sequence[str], scale: float
) -> dict[str, Setting]:
    """`settings` with `schedule` scaled by `scale_schedule`, each source saying so; a UsageError
    for a scale outside (0, 1]."""
    if not 0 < scale <= 1:
        raise UsageError(f"--schedule_scale={scale:g}: expected a factor in (0, 1]")
    if scale == 1:
        return settings
    values = scale_schedule({name: s.value for name, s in settings.items()}, schedule, scale)
    return settings | {
        name: Setting(value, f"{settings[name].source}; scaled ×{scale:g}")
        for name, value in values.items()
    }


# (a schedule length, the run length it must fit in, what it is): a shortened run that keeps the
# paper's schedule never finishes its ramp-up or never decays its LR; `schedule_warnings` says so.
SCHEDULES = (
    ("warmup_steps", "train_steps", "the consistency ramp-up"),
    ("lr_decay_steps", "train_steps", "the LR decay"),
    ("warmup_kimg", "train_kimg", "the λ_U ramp-up"),
)


def schedule_warnings(config: RunConfig) -> list[str]:
    """One line per schedule that lies beyond the run (`--train_steps=1500` with the paper's
    50,000-step ramp-up; none for a setting the method does not have, supervised's ramp-up), and
    per moving average that evaluation reads while it still holds much of its initial value
    (0.999^1500 = 22%)."""
    lines = []
    for length, run, what in SCHEDULES:
        if length not in config.settings or run not in config.settings:
            continue
        value, total = config.value(length), config.value(run)
        if value > total:
            lines.append(
                f"warning: --{length}={value} ({what}) lies beyond --{run}={total}: the run never "
                f"gets there; shorten every schedule with the run: --schedule_scale (e.g. 0.01: "
                "1% of each length)"
            )
    steps = config.value("train_steps") if "train_steps" in config.settings else None
    steps = steps or getattr(config, "iterations", None)  # MixMatch counts iterations
    for name, what in AVERAGES:
        if name in config.settings and steps:
            decay = config.value(name)
            if decay**steps > INITIAL_SHARE:
                lines.append(
                    f"warning: --{name}={decay:g} ({what}) still weighs its initial value by "
                    f"{decay**steps:.0%} after the run's {steps} steps, and evaluation uses it: "
                    f"a run this short wants a smaller one (e.g. {_shorter(steps):g})"
                )
    return lines


# Moving averages that evaluation reads, and the share of their initial value a run may leave.
AVERAGES = (("bn_momentum", "the BN moving averages"), ("ema", "the evaluated EMA of weights"))
INITIAL_SHARE = 0.05


def _shorter(steps: int) -> float:
    """The decay, of 0.9, 0.99, 0.999, ..., the nearest to 1 that leaves at most
    `INITIAL_SHARE` of the initial value after `steps`."""
    decay = 0.9
    while (1 - (1 - decay) / 10) ** steps <= INITIAL_SHARE:
        decay = 1 - (1 - decay) / 10
    return round(decay, 10)


EXECUTION = ("strategy", "sync_bn", "deterministic", "xla", "mixed_precision", "steps_per_call",
             "profile_step")  # fmt: skip


def format_config(config: RunConfig) -> str:
    """`--print_config`: every value config.json records, by the flag that sets it, with its
    source: the run's identity and the stack's own fields (protocol, network size, ...), how its
    steps execute, then one line per setting."""
    skipped = {"settings", "field_sources", "flag_names", *EXECUTION}
    fields = [f.name for f in dataclasses.fields(config) if f.name not in skipped]
    rows = [(name, getattr(config, name), config.field_sources.get(name, "")) for name in fields]
    execution = " ".join(f"{k}={getattr(config, k)}" for k in EXECUTION)
    rows.append(("execution", execution, ""))
    rows += sorted((config.flag_names.get(name, name), s.value, s.source)
                   for name, s in config.settings.items())  # fmt: skip
    width = max([12, *(len(str(value)) for name, value, _ in rows if name != "execution")]) + 2
    return "\n".join(
        f"{name:<28}{value}" if name == "execution" else f"{name:<28}{value!s:<{width}}{source}"
        for name, value, source in rows
    )
