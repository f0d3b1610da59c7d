"""broker-hub's black-box benchmark: ``python -m bench`` (see bench/README.md)."""
