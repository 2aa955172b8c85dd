"""FixMatch (Sohn et al. 2020) over the MixMatch stack's pieces, with NS3L added.

Spec: shared/spec/fixmatch.md; choices and their sources: docs/fixmatch.md."""
