"""shoal: Docker-style container networking on real kernel objects."""

__version__ = "0.1.0"
