"""The ``audio`` recipe: PANN CNN14 embeddings from a checkpoint laid out like the release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vhd.extract.recipes import ExtractOptions, Output, cnn14, recipe_class
from vhd.extract.recipes.audio import Audio

RATE = cnn14.SAMPLE_RATE


def tone(seconds: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def release_layout(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """As the released .pth: the state under "model", with torchlibrosa's front-end tensors."""
    front_end = {
        "spectrogram_extractor.stft.conv_real.weight": torch.zeros(513, 1, 1024),
        "spectrogram_extractor.stft.conv_imag.weight": torch.zeros(513, 1, 1024),
        "logmel_extractor.melW": torch.zeros(513, 64),
    }
    return {"model": {**state, **front_end}, "iteration": 0}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pann") / "Cnn14_mAP=0.431.pth"
    torch.save(release_layout(cnn14.network_state(cnn14.Cnn14())), path)
    return path


@pytest.fixture(scope="module")
def recipe(checkpoint: Path) -> Audio:
    return Audio(ExtractOptions(clip_len=2.0, batch_size=2, weights={"pann": checkpoint}))


def test_registered_with_its_output_and_weights(recipe: Audio) -> None:
    assert recipe_class("audio") is Audio
    assert recipe.outputs() == [Output("pann_features", 2048, "audio")]
    assert recipe.sample_rate == 32000 and recipe.samples_per_clip() == 64000
    assert Audio.weight_files["pann"].filename == "Cnn14_mAP=0.431.pth"
    assert recipe.describe()["min_samples"] == cnn14.MIN_SAMPLES == 9920
    assert not recipe.model.training


def test_tone_gives_one_relu_row_per_clip(recipe: Audio) -> None:
    clips = tone(6.0).reshape(3, -1)  # 1 kHz fills 2 s with whole periods: identical clips
    features = recipe.audio_features(clips, has_audio=True)["pann_features"]
    assert features.shape == (3, 2048) and features.dtype == np.float32
    assert np.isfinite(features).all() and (features >= 0).all()
    # batch_size 2 splits the clips [2, 1]; each row depends on its clip alone
    np.testing.assert_allclose(features[0], features[2], rtol=1e-4, atol=1e-4)
    silence = recipe.audio_features(np.zeros((1, 64000), np.float32), has_audio=False)
    assert not np.allclose(silence["pann_features"][0], features[0])


def test_front_end_bins_and_tone_peak(recipe: Audio) -> None:
    bank = recipe.model.front_end.mel.mel_scale.fb  # (513 FFT bins, 64 mel bins)
    freqs = torch.linspace(0, RATE / 2, bank.shape[0])
    used = freqs[bank.sum(dim=1) > 0]
    assert bank.shape == (513, 64) and used.min() >= 50 and used.max() <= 14000
    peaks = freqs[bank.argmax(dim=0)]
    assert (peaks.diff() >= 0).all()
    with torch.inference_mode():
        log_mel = recipe.model.front_end(torch.from_numpy(tone(1.0))[None])[0]
    at_1k = bank[int(1000 / (RATE / 2) * (bank.shape[0] - 1))]
    assert log_mel.mean(dim=1).argmax() == at_1k.argmax()


def test_short_clips_are_padded_to_the_minimum(recipe: Audio) -> None:
    # rows depend only on the samples given, so 0.2-s clips need no recipe of their own
    samples = round(0.2 * RATE)
    assert samples < cnn14.MIN_SAMPLES
    clips = tone(0.6).reshape(3, samples)
    features = recipe.audio_features(clips, has_audio=True)["pann_features"]
    assert features.shape == (3, 2048) and np.isfinite(features).all()
    padded = np.pad(clips[:1], ((0, 0), (0, cnn14.MIN_SAMPLES - samples)))
    np.testing.assert_allclose(features[:1], recipe.embed(padded).numpy(), rtol=1e-4, atol=1e-4)
    assert recipe.audio_features(clips[:0], has_audio=True)["pann_features"].shape == (0, 2048)


def test_state_dict_misfits_name_the_file(recipe: Audio) -> None:
    path = Path("Cnn14_mAP=0.431.pth")
    good = cnn14.network_state(recipe.model)
    cnn14.check_state_dict(recipe.model, release_layout(good)["model"], path)
    counters = {k: v for k, v in good.items() if not k.endswith("num_batches_tracked")}
    cnn14.check_state_dict(recipe.model, counters, path)  # unused in eval: may be absent
    missing = {k: v for k, v in good.items() if k != "fc1.bias"}
    with pytest.raises(ValueError, match=r"Cnn14_mAP=0\.431\.pth.*missing.*fc1\.bias"):
        cnn14.check_state_dict(recipe.model, missing, path)
    wrong = {**good, "fc_audioset.weight": torch.zeros(10, 2048)}
    with pytest.raises(ValueError, match=r"shape.*fc_audioset\.weight \(10, 2048\)"):
        cnn14.check_state_dict(recipe.model, wrong, path)
    extra = {**good, "spectrogram_extractor.stft.window": torch.zeros(1024)}
    with pytest.raises(ValueError, match=r"unexpected.*spectrogram_extractor"):
        cnn14.check_state_dict(recipe.model, extra, path)


def test_bad_files_raise_value_errors(tmp_path: Path) -> None:
    small = tmp_path / "small.pth"
    torch.save({"model": {"bn0.weight": torch.zeros(3)}}, small)
    with pytest.raises(ValueError, match=r"small\.pth is not a PANN CNN14 state dict.*missing"):
        Audio(ExtractOptions(weights={"pann": small}))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth"):
        Audio(ExtractOptions(weights={"pann": junk}))
    with pytest.raises(ValueError, match=r"weights\['pann'\]"):
        Audio(ExtractOptions())
