"""Embedded synthetic data in the real benchmarks' on-disk formats, with planted structure.

One *world* (``world_seed`` and the dimensions) fixes an event vocabulary shared by every kind:
common events are (verb, noun) pairs with a video prototype, word vectors and a weak audio
prototype; each highlight domain has a few rare highlight events whose video prototypes are larger
and live in their own subspace. Videos are sequences of event segments over ``clip_len`` s clips;
a clip is its event's prototype + the video's scene + smooth drift + noise.

- ``moments`` (QVHighlights): queries are noisy word vectors of one event; windows are where it
  happens; saliency peaks mid-window.
- ``highlights`` (YouTube Highlights or TVSum): rare highlight clips of the domain's events; the
  audio echoes them with a lag, and carries what the visual cue misses.
- ``unlabeled`` (pretraining corpus): the same videos, no labels.
- ``videos`` (``videos.py``): real mp4 files of moving shapes, each with a planted highlight
  (a flashing disc and a tone), and annotations in the formats above, for ``vhd extract``.

``vhd synth --kind ... --out DIR --seed N`` writes one; ``ensure_synthetic`` is what the
datamodules' ``synthetic`` option calls. Everything is deterministic for ``(world_seed, seed)``.
"""

from vhd.datamodules.synthetic.api import (
    FORMAT_VERSION,
    ensure_synthetic,
    generate,
    main,
    manifest,
    read_manifest,
)
from vhd.datamodules.synthetic.config import KINDS, SIZES, STYLES, SynthConfig, resolve_config
from vhd.datamodules.synthetic.world import World

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "SIZES",
    "STYLES",
    "SynthConfig",
    "World",
    "ensure_synthetic",
    "generate",
    "main",
    "manifest",
    "read_manifest",
    "resolve_config",
]
