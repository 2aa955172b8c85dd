"""The FixMatch stack's run configuration: the libml fields, counted in kimg."""

from dataclasses import dataclass

from mixmatch.config import KimgRunConfig


@dataclass(frozen=True)
class RunConfig(KimgRunConfig):
    augment_workers: int = 4  # host threads building each step's strong views (PIL)
