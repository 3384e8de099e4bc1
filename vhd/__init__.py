"""vhd: video highlight detection and moment retrieval on PyTorch Lightning."""

__version__ = "0.1.0"
