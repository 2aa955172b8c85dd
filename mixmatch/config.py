"""The MixMatch stack's run configuration: the shared fields, counted in iterations."""

from dataclasses import dataclass

from ns3l import settings


@dataclass(frozen=True)
class RunConfig(settings.RunConfig):
    @property
    def iterations(self) -> int:
        """kimg counts labeled images (1 kimg = 1,024), one iteration takes `batch` of them."""
        return self.value("train_kimg") * 1024 // self.value("batch")

    @property
    def report_every(self) -> int:
        return max(self.value("report_kimg") * 1024 // self.value("batch"), 1)
