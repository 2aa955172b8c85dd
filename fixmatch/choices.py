"""The named choices of a FixMatch run, in a module that loads nothing (the commands' --help
reads them without TensorFlow). Each tuple's first entry is not necessarily the default: the
defaults, with their sources, are in presets.py."""

# The strong augmentation (spec §3.3, §3.4): fixmatch.py's CTAugment, or the paper's RA rows.
AUGMENTS = ("ctaugment", "randaugment")
# RandAugment's magnitudes: the released ab_fixmatch_ra.py's (spec §3.4) or the paper's table
# (spec §3.5).
RA_RANGES = ("code", "paper")
# NS3L on FixMatch's unlabeled rows (spec §11; docs/fixmatch.md gives each default's reasoning).
# Selector: whose detached prediction picks the negatives; view: whose logits are penalised;
# rows: which of the μB rows; normalisation: divide by μB or by the rows taking part.
SELECTORS = ("weak", "strong", "ema")
VIEWS = ("strong", "weak", "both")
ROWS = ("unconfident", "all", "confident")
NORMALISATIONS = ("batch", "active")
NUMERICS = ("stable", "reference")  # ns3l.loss.NUMERICS, which loads Keras
