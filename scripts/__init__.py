"""The paper's tables and Figure 3 as sweeps of training runs, and the report that compares them
with the published numbers (docs/reproducing.md)."""
