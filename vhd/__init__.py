"""vhd: video highlight detection and moment retrieval on PyTorch Lightning."""

__version__ = "0.1.0"

__all__ = ["Highlighter", "__version__"]


def __getattr__(name: str):
    """``from vhd import Highlighter`` without importing torch for every ``import vhd``."""
    if name == "Highlighter":
        from vhd.highlight.api import Highlighter

        return Highlighter
    raise AttributeError(f"module 'vhd' has no attribute {name!r}")
