"""Methods, one LightningModule per file, on the shared plumbing of ``base.VHDModule``."""

from vhd.models.base import VHDModule
from vhd.models.baseline import SimilarityBaseline

__all__ = ["SimilarityBaseline", "VHDModule"]
