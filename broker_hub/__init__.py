"""broker-hub: a WebSub hub that pushes package-index changes to mirrors."""

__version__ = "0.1.0"
