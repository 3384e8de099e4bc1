"""``audio``: PANN CNN14 AudioSet embeddings, 2048-d per clip.

HPCL reports 2048-d PANN audio features and UMT's audio features are PANN too; both come from
CNN14 (``vhd.extract.recipes.cnn14``), whose ``fc1`` output (after its ReLU) is the embedding
the PANN release calls ``embedding``.

Reading chosen: each clip's waveform (mono, 32 kHz) goes through CNN14 on its own, so a row
depends only on its clip, as a feature file's rows are used. CNN14 pools its spectrogram five
times by 2, so a clip shorter than ``MIN_SAMPLES`` (9920 samples, 0.31 s) is zero-padded at the
end up to it, as PANN's training padded short AudioSet clips with silence; clips of 0.31 s and
longer are used as they are.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from vhd.extract.recipes import cnn14
from vhd.extract.recipes.base import (
    ExtractOptions,
    Output,
    Recipe,
    WeightFile,
    load_state_dict_file,
)

FOLDER = "pann_features"


class Audio(Recipe):
    name = "audio"
    summary = "PANN CNN14 AudioSet embeddings (2048-d), as HPCL's and UMT's audio features"
    weight_files: ClassVar[dict[str, WeightFile]] = {
        "pann": WeightFile(
            filename="Cnn14_mAP=0.431.pth",
            url="https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth",
            description="PANN CNN14 AudioSet weights (Cnn14_mAP=0.431.pth)",
        )
    }
    sample_rate = cnn14.SAMPLE_RATE

    def __init__(self, options: ExtractOptions) -> None:
        super().__init__(options)
        if "pann" not in options.weights:
            raise ValueError("the audio recipe needs weights['pann'] (Cnn14_mAP=0.431.pth)")
        self.model = self._load(Path(options.weights["pann"])).to(self.device)

    @classmethod
    def random_weights(cls, folder: Path) -> dict[str, Path]:
        path = Path(folder) / "cnn14_random.pth"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = cnn14.network_state(cnn14.Cnn14())
        # laid out as the release ({"model": ...}); half precision keeps the file small
        torch.save(
            {"model": {k: v.half() if v.is_floating_point() else v for k, v in state.items()}}, path
        )
        return {"pann": path}

    @staticmethod
    def _load(path: Path) -> cnn14.Cnn14:
        try:
            state = load_state_dict_file(path)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
            raise ValueError(f"{path} is not a readable torch weight file: {err}") from err
        return cnn14.load_cnn14(state, path)

    @classmethod
    def outputs(cls) -> list[Output]:
        return [Output(FOLDER, cnn14.EMBEDDING_DIM, "audio")]

    @torch.inference_mode()
    def embed(self, clips: np.ndarray) -> torch.Tensor:
        """(B, samples) float32 -> (B, 2048); short clips are zero-padded to ``MIN_SAMPLES``."""
        waves = torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32)).to(self.device)
        waves = F.pad(waves, (0, max(0, cnn14.MIN_SAMPLES - waves.shape[1])))
        return self.model.embed(waves).float().cpu()

    def audio_features(self, clips: np.ndarray, has_audio: bool) -> dict[str, np.ndarray]:
        step = max(1, self.options.batch_size)
        parts = [self.embed(clips[start : start + step]) for start in range(0, len(clips), step)]
        features = torch.cat(parts) if parts else torch.zeros(0, cnn14.EMBEDDING_DIM)
        return {FOLDER: features.numpy()}

    def describe(self) -> dict[str, Any]:
        return {
            "model": "PANN CNN14, AudioSet (Kong et al. 2020), Cnn14_mAP=0.431.pth",
            "feature": "fc1 embedding after ReLU (2048-d), CNN14 run on each clip alone",
            "front_end": {
                "sample_rate": cnn14.SAMPLE_RATE,
                "window": cnn14.WINDOW,
                "hop": cnn14.HOP,
                "mel_bins": cnn14.MEL_BINS,
                "fmin": cnn14.FMIN,
                "fmax": cnn14.FMAX,
                "stft": "hann (periodic), centred, reflect padding, power 2",
                "mel": "slaney scale, slaney norm (librosa's filters), torchaudio",
                "log": f"10*log10(max(power, {cnn14.AMIN})), ref 1.0, no top_db",
            },
            "min_samples": cnn14.MIN_SAMPLES,
            "short_clips": "zero-padded at the end to min_samples",
        }
