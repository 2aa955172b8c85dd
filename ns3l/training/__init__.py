"""The run machinery both training stacks share: data sets and splits, random streams,
checkpoints and resume, TensorBoard summaries, results files, strategies and the command line.

Nothing here knows about either stack, and nothing here is part of the loss's public API: it
needs the `train` extra (TensorFlow, TFDS, absl), which `pip install ns3l-tf` alone does not
pull in. The loss a user imports lives one level up, in `ns3l`."""
