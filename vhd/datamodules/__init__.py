"""DataModules: files in, ``Batch`` out. Models never see paths."""

from vhd.datamodules.moments import MomentDataModule

__all__ = ["MomentDataModule"]
