"""The shared world: event vocabulary and prototypes every kind of synthetic data draws from.

Common events are (verb, noun) pairs; an event's video prototype mixes a verb direction, a noun
direction and its own, so events sharing a word look partly alike and a query has to match both
words. Common events live in the first ``1 - highlight_subspace`` share of the video dimensions;
highlight events (a few per domain slot) live only in the rest, with a larger norm, so they stay
distinct after L2 normalisation and stand out to a label-free model (reconstruction error, norm).
Each component has its own random stream, so changing one count leaves the others unchanged.
"""

from __future__ import annotations

import numpy as np

from vhd.datamodules.synthetic.config import SynthConfig

VERBS = (
    "slices", "opens", "washes", "paints", "throws", "carries",
    "fixes", "folds", "pours", "lifts", "cleans", "holds",
)  # fmt: skip
NOUNS = (
    "onion", "door", "car", "fence", "ball", "box",
    "bike", "shirt", "bucket", "table", "window", "guitar",
)  # fmt: skip
SUBJECTS = (
    "a person", "someone", "a woman", "a man", "a young girl", "the chef", "an old man", "a boy",
)  # fmt: skip
TAILS = (
    "", "in the kitchen", "outside the house", "while talking to the camera", "at night",
    "with both hands", "on a sunny day",
)  # fmt: skip
FILLERS = tuple(sorted({w for text in (*SUBJECTS, *TAILS, "the a an") for w in text.split()}))
VOCABULARY = (*VERBS, *NOUNS, *FILLERS)

# Independent random streams of the world, one per component.
_EVENTS, _VERB, _NOUN, _OWN, _WORDS, _AUDIO, _SIGNATURE, _HIGHLIGHT = range(8)


def directions(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """Random unit vectors, (count, dim)."""
    vectors = rng.normal(size=(count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class World:
    """Prototypes fixed by the world parameters of a ``SynthConfig``.

    Norms are ``sqrt(dim)`` (one unit per coordinate, like the noise), highlight video prototypes
    ``highlight_scale`` times that.
    """

    def __init__(self, config: SynthConfig) -> None:
        if config.num_events > len(VERBS) * len(NOUNS):
            raise ValueError(f"num_events is at most {len(VERBS) * len(NOUNS)} (verbs x nouns)")
        self.config = config
        self.video_dim, self.text_dim, self.audio_dim = (
            config.video_dim, config.text_dim, config.audio_dim,
        )  # fmt: skip
        common = config.video_dim - max(1, round(config.video_dim * config.highlight_subspace))
        self.common_dims, self.highlight_dims = slice(0, common), slice(common, config.video_dim)
        pairs = self._rng(_EVENTS).permutation(len(VERBS) * len(NOUNS))[: config.num_events]
        self.event_words = [(VERBS[p // len(NOUNS)], NOUNS[p % len(NOUNS)]) for p in pairs]
        verb = dict(zip(VERBS, directions(self._rng(_VERB), len(VERBS), common), strict=True))
        noun = dict(zip(NOUNS, directions(self._rng(_NOUN), len(NOUNS), common), strict=True))
        own = directions(self._rng(_OWN), config.num_events, common)
        mixed = np.stack(
            [0.45 * verb[v] + 0.45 * noun[n] + 0.77 * o
             for (v, n), o in zip(self.event_words, own, strict=True)]
        )  # fmt: skip
        self.event_video = np.zeros((config.num_events, config.video_dim))
        self.event_video[:, self.common_dims] = self._scaled(mixed, config.video_dim)
        words = directions(self._rng(_WORDS), len(VOCABULARY), config.text_dim)
        self.word_vectors = dict(zip(VOCABULARY, words * np.sqrt(config.text_dim), strict=True))
        self.event_audio = 0.5 * self._scaled(
            directions(self._rng(_AUDIO), config.num_events, config.audio_dim), config.audio_dim
        )
        self.highlight_audio = directions(self._rng(_SIGNATURE), 1, config.audio_dim)[0] * np.sqrt(
            config.audio_dim
        )

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.config.world_seed, *key])

    @staticmethod
    def _scaled(vectors: np.ndarray, dim: int) -> np.ndarray:
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True) * np.sqrt(dim)

    def highlight_video(self, slot: int) -> np.ndarray:
        """(highlights_per_domain, video_dim) prototypes of domain slot ``slot``'s highlights."""
        width = self.highlight_dims.stop - self.highlight_dims.start
        vectors = np.zeros((self.config.highlights_per_domain, self.video_dim))
        vectors[:, self.highlight_dims] = directions(
            self._rng(_HIGHLIGHT, slot), self.config.highlights_per_domain, width
        )
        return vectors * self.config.highlight_scale * np.sqrt(self.video_dim)

    def scene(self, rng: np.random.Generator) -> np.ndarray:
        """A video's own background direction in the common subspace, norm ``sqrt(video_dim)``."""
        vector = np.zeros(self.video_dim)
        vector[self.common_dims] = directions(rng, 1, self.common_dims.stop)[0]
        return vector * np.sqrt(self.video_dim)
