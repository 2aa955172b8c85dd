"""The Oliver et al. (2018) "realistic SSL" stack with NS3L (paper Tables 1-2).

Spec: shared/spec/realistic_ssl.md; choices and their sources: docs/realistic_ssl.md."""
