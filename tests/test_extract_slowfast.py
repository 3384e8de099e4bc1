"""The ``slowfast`` recipe: HERO's sampling and crop, and pooled features equal to the model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vhd.extract.recipes import ExtractOptions, recipe_class
from vhd.extract.recipes.slowfast import DIM, SlowFast, build_model

SLOW_FRAMES = [0, 4, 8, 13, 17, 22, 26, 31]  # linspace(0, 31, 8) truncated, as PySlowFast packs


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random SlowFast laid out as the zoo file; BN statistics randomised so they matter."""
    torch.manual_seed(0)
    model = build_model()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    state = model.state_dict()
    path = tmp_path_factory.mktemp("weights") / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": state}, path)
    return path, state


def reference_features(path: Path, clips: np.ndarray) -> np.ndarray:
    """pytorchvideo's model with the classifier projection removed, on HERO-normalised crops."""
    model = build_model().eval()
    model.load_state_dict(torch.load(path, weights_only=True)["model_state"])
    model.blocks[-1].proj = torch.nn.Identity()
    height, width = clips.shape[2:4]
    top, left = (height - 224) // 2, (width - 224) // 2
    crops = clips[:, :, top : top + 224, left : left + 224].astype(np.float32) / 255.0
    fast = torch.from_numpy((crops - 0.45) / 0.225).permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
    with torch.inference_mode():
        return model([fast[:, :, SLOW_FRAMES], fast]).numpy()


def test_registered_and_described() -> None:
    assert recipe_class("slowfast") is SlowFast
    assert SlowFast.weight_files["slowfast"].url.endswith("kinetics/SLOWFAST_8x8_R50.pyth")


def test_hero_sampling_and_resize() -> None:
    # HERO: 30 fps, 60-frame clips, frames linspace(0, 63, 32) truncated and clamped to 59
    hero = torch.linspace(0, 63, 32).long().clamp(max=59)
    offsets = torch.tensor(SlowFast.frame_offsets) * 60
    assert offsets.floor().long().tolist() == hero.tolist()
    assert SlowFast.frame_offsets == tuple(sorted(SlowFast.frame_offsets))
    recipe = object.__new__(SlowFast)  # frame_size needs no weights
    assert recipe.frame_size(333, 197) == (378, 224)
    assert recipe.frame_size(197, 333) == (224, 378)
    assert recipe.frame_size(640, 640) == (224, 224)


def test_features_equal_pytorchvideo(weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, _ = weights
    recipe = SlowFast(ExtractOptions(clip_len=2.0, weights={"slowfast": path}, batch_size=2))
    assert [(o.folder, o.dim, o.modality) for o in recipe.outputs()] == [
        ("slowfast_features", DIM, "video")
    ]
    assert recipe.describe()["frames_per_clip"] == 32
    width, height = recipe.frame_size(333, 197)
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(3, 32, height, width, 3), dtype=np.uint8)
    features = recipe.video_features(clips)["slowfast_features"]
    assert features.shape == (3, DIM) and features.dtype == np.float32
    assert np.isfinite(features).all() and features.std() > 0
    expected = reference_features(path, clips)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_wrong_weight_file(weights: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    _, state = weights
    broken = dict(state)
    del broken["blocks.0.multipathway_blocks.0.conv.weight"]
    broken["blocks.6.proj.weight"] = torch.zeros(10, DIM)
    path = tmp_path / "other.pyth"
    torch.save({"model_state": broken}, path)
    with pytest.raises(ValueError, match=r"other\.pyth.*missing \(1\).*shape \(1\)"):
        SlowFast(ExtractOptions(weights={"slowfast": path}))
    garbage = tmp_path / "garbage.pyth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pyth"):
        SlowFast(ExtractOptions(weights={"slowfast": garbage}))
    with pytest.raises(ValueError, match="needs weights"):
        SlowFast(ExtractOptions())
