"""The MixMatch stack (Berthelot et al. 2019) with NS3L (paper Tables 3-5, Figure 3).

Spec: shared/spec/mixmatch.md; choices and their sources: docs/mixmatch.md."""
