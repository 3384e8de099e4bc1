"""Own videos -> features: decode (PyAV), cut into clips, run a recipe, write the folders the
datamodules read (``DIR/<feature>/{vid}.npz``) with a manifest. ``vhd extract`` is the command
(``vhd.extract.cli``); recipes live in ``vhd.extract.recipes``.
"""
