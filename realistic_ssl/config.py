"""The Oliver stack's run configuration: the shared fields plus its protocol and network size."""

from dataclasses import dataclass

from ns3l.training import settings


@dataclass(frozen=True)
class RunConfig(settings.RunConfig):
    protocol: str = "pt"  # presets.PROTOCOLS: whose values the spec §8 rows take
    wrn_depth: int = 28
    wrn_width: int = 2
