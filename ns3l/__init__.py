"""NS3L: Negative Sampling in Semi-Supervised Learning (Chen, Shah, Kyrillidis, ICML 2020).

The public API, needing only Keras and numpy: the loss as a function (`ns3l_loss`,
`ns3l_per_example`), a Keras loss (`NS3LLoss`), a Keras layer (`NS3L`), the negative selectors
(`negatives_below`, `random_negatives`) and `UsageError`. `import ns3l` registers the Keras
classes at once, so `keras.models.load_model` finds them in a file that holds them.

`ns3l.training` is the run machinery both training stacks share (data sets, splits, random
streams, checkpoints, summaries, results, strategies, the command line); it needs the `train`
extra and is not imported by `import ns3l`."""

import os as _os

_COMMAND = bool(_os.environ.get("NS3L_NATIVE_LOGS"))  # set by our commands, before any import

if _COMMAND:  # before TensorFlow loads: filter its C++ lines (ns3l/training/console.py)
    from ns3l.training import console as _console

    _console.apply_from_environment()

from ns3l.errors import UsageError  # noqa: E402

_LOSS_NAMES = ("NS3L", "NS3LLoss", "negatives_below", "ns3l_loss", "ns3l_per_example",
               "random_negatives")  # fmt: skip
__all__ = [*_LOSS_NAMES, "UsageError"]


def __getattr__(name: str) -> object:
    """Our commands import the loss (and so Keras and TensorFlow) when the training step needs
    it, not at `--help`; everyone else has it imported below."""
    if name in _LOSS_NAMES:
        from ns3l import loss

        return getattr(loss, name)
    raise AttributeError(f"module 'ns3l' has no attribute {name!r}")


if not _COMMAND:
    from ns3l.loss import (  # noqa: E402, F401
        NS3L,
        NS3LLoss,
        negatives_below,
        ns3l_loss,
        ns3l_per_example,
        random_negatives,
    )
