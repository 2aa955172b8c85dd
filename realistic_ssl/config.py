"""The Oliver stack's run configuration: the shared fields plus its network and split options."""

from dataclasses import dataclass

from ns3l import settings


@dataclass(frozen=True)
class RunConfig(settings.RunConfig):
    unlabeled_includes_labeled: bool = False
    wrn_depth: int = 28
    wrn_width: int = 2
    bn_momentum: float = 0.999
    bn_epsilon: float = 1e-3
