"""Feature recipes, registered by name; each lives in its own module, imported when chosen.

``vhd extract --list`` prints them. A recipe module defines one ``Recipe`` subclass; adding a
recipe is a new module plus a line here.
"""

from __future__ import annotations

import importlib

from vhd.extract.recipes.base import ExtractOptions, Output, Recipe, WeightFile

# name -> "module:Class"; imported on demand so that listing recipes loads no network code
RECIPES = {
    "pixel_mel": "vhd.extract.recipes.pixel_mel:PixelMel",
    "clip": "vhd.extract.recipes.clip:Clip",
    "slowfast": "vhd.extract.recipes.slowfast:SlowFast",
    "audio": "vhd.extract.recipes.audio:Audio",
}


def recipe_class(name: str) -> type[Recipe]:
    """The class registered as ``name``; a ``KeyError`` names the known recipes."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    module, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["RECIPES", "ExtractOptions", "Output", "Recipe", "WeightFile", "recipe_class"]
