"""Customer lifecycle pipeline: the core package."""

__version__ = "0.1.0"
