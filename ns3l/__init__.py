"""NS3L: Negative Sampling in Semi-Supervised Learning (Chen, Shah, Kyrillidis, ICML 2020)."""
