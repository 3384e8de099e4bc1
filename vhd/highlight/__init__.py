"""A video + a checkpoint -> moments, saliency over time, a plot and a reel.

``Highlighter`` (``api.py``) does the work; ``vhd highlight`` (``cli.py``) and ``vhd app``
(``app.py``) are thin shells over it.
"""
