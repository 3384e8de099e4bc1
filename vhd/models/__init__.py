"""Methods, one LightningModule per file, on the shared plumbing of ``base.VHDModule``."""

from vhd.models.base import VHDModule
from vhd.models.baseline import SimilarityBaseline
from vhd.models.hpcl import HPCL
from vhd.models.rasl import RASL
from vhd.models.videolights import VideoLights

__all__ = ["HPCL", "RASL", "SimilarityBaseline", "VHDModule", "VideoLights"]
