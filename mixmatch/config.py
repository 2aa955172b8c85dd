"""The libml stacks' run configurations (MixMatch, and FixMatch over it): the shared fields,
a length counted in kimg of labeled images and turned into iterations."""

from dataclasses import dataclass

from ns3l.training import settings


@dataclass(frozen=True)
class KimgRunConfig(settings.RunConfig):
    stl10_folds: str | None = None  # the official fold_indices.txt, train_X.bin beside it

    @property
    def iterations(self) -> int:
        """kimg counts labeled images (1 kimg = 1,024), one iteration takes `batch` of them."""
        return self.value("train_kimg") * 1024 // self.value("batch")

    @property
    def report_every(self) -> int:
        return max(self.value("report_kimg") * 1024 // self.value("batch"), 1)


@dataclass(frozen=True)
class RunConfig(KimgRunConfig):
    model_size: str = "standard"  # presets.MODEL_SIZES: "large" is the MixMatch paper's 135
