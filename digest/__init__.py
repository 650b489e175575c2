"""digest: a daily email digest of new research papers."""

__version__ = "0.1.0"
