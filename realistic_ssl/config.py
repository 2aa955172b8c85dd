"""A run's resolved configuration: what train.py builds from flags and presets, and loop.py runs."""

from dataclasses import asdict, dataclass

from ns3l.settings import Setting, format_settings

# May change between a run and its resumption: where data lives, how many devices run it.
MUTABLE_KEYS = ("data_dir", "download", "strategy", "logdir")


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
    unlabeled_includes_labeled: bool = False
    strategy: str = "default"
    wrn_depth: int = 28
    wrn_width: int = 2
    bn_momentum: float = 0.999
    bn_epsilon: float = 1e-3
    deterministic: bool = False

    def value(self, name: str):
        return self.settings[name].value

    def as_json(self) -> dict:
        """The configuration as results.json and config.json record it (values only)."""
        record = {k: v for k, v in asdict(self).items() if k != "settings"}
        return record | {name: s.value for name, s in self.settings.items()}


def format_config(config: RunConfig) -> str:
    """`--print_config`: one line per value: name, value, where it came from."""
    header = {k: getattr(config, k) for k in ("method", "dataset", "seed", "logdir")}
    return format_settings(header, config.settings)
