"""NS3L: Negative Sampling in Semi-Supervised Learning (Chen, Shah, Kyrillidis, ICML 2020).

`import ns3l` gives the loss in three forms (function, Keras loss, Keras layer); the run machinery
both training stacks share lives in the submodules (datasets, splits, streams, checkpoints,
summaries, results, distribute)."""

from ns3l import console as _console

_console.apply_from_environment()  # our commands: before TensorFlow loads (ns3l/console.py)

from ns3l.errors import UsageError  # noqa: E402
from ns3l.loss import (  # noqa: E402
    NS3L,
    NS3LLoss,
    negatives_below,
    ns3l_loss,
    ns3l_per_example,
    random_negatives,
)

__all__ = [
    "NS3L",
    "NS3LLoss",
    "UsageError",
    "negatives_below",
    "ns3l_loss",
    "ns3l_per_example",
    "random_negatives",
]
