"""The ``clip`` recipe: weights load strictly, pixels and tokens follow CLIP / Moment-DETR.

A randomly initialised ViT-B-32 stands in for the OpenAI weights: the checks compare the recipe
with open_clip's own preprocessing and text path on the same model, so no download is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

open_clip = pytest.importorskip("open_clip")
safetensors_torch = pytest.importorskip("safetensors.torch")
Image = pytest.importorskip("PIL.Image")

from vhd.extract.recipes import ExtractOptions, recipe_class  # noqa: E402
from vhd.extract.recipes.clip import MAX_TEXT_TOKENS, MODEL_NAME, Clip  # noqa: E402


@pytest.fixture(scope="module")
def reference() -> tuple[torch.nn.Module, object]:
    """open_clip's own model and image preprocessing, random weights."""
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL_NAME, pretrained=None)
    return model.eval(), preprocess


@pytest.fixture(scope="module")
def weight_file(reference, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "clip.safetensors"
    state = {key: value.contiguous() for key, value in reference[0].state_dict().items()}
    safetensors_torch.save_file(state, str(path))
    return path


@pytest.fixture(scope="module")
def recipe(weight_file: Path) -> Clip:
    return Clip(ExtractOptions(weights={"clip": weight_file}, batch_size=2))


def frames(width: int, height: int, count: int = 1, seed: int = 0) -> np.ndarray:
    """(count, 1, H, W, 3) uint8 RGB noise: ``count`` clips of one frame each."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 1, height, width, 3), dtype=np.uint8)


@torch.inference_mode()
def open_clip_image_feature(reference, frame: np.ndarray) -> np.ndarray:
    model, preprocess = reference
    return model.encode_image(preprocess(Image.fromarray(frame))[None])[0].numpy()


def test_registered_with_outputs_and_description(recipe: Clip) -> None:
    assert recipe_class("clip") is Clip
    assert [(o.folder, o.dim, o.modality, o.key) for o in recipe.outputs()] == [
        ("clip_features", 512, "video", "features"),
        ("clip_text_features", 512, "text", "last_hidden_state"),
    ]
    assert Clip.frame_offsets == (0.5,)
    assert recipe.describe()["pretrained"] == "openai"


def test_frame_size_scales_the_short_side_to_224_truncating_the_long_side(recipe: Clip) -> None:
    assert recipe.frame_size(641, 359) == (399, 224)
    assert recipe.frame_size(359, 641) == (224, 399)
    assert recipe.frame_size(1280, 720) == (398, 224)
    assert recipe.frame_size(100, 100) == (224, 224)


def test_video_features_shape_dtype_and_batches(recipe: Clip) -> None:
    clips = frames(*recipe.frame_size(641, 359), count=3)  # 3 clips, batch_size 2
    out = recipe.video_features(clips)
    assert set(out) == {"clip_features"}
    features = out["clip_features"]
    assert features.shape == (3, 512) and features.dtype == np.float32
    assert np.isfinite(features).all()


@pytest.mark.parametrize("size", [(1280, 720), (720, 1280)])
def test_video_features_match_open_clip_preprocessing(recipe: Clip, reference, size) -> None:
    clip = frames(*recipe.frame_size(*size))
    expected = open_clip_image_feature(reference, clip[0, 0])
    np.testing.assert_allclose(recipe.video_features(clip)["clip_features"][0], expected, atol=1e-4)


def test_crop_offset_is_the_floor_like_ffmpeg(recipe: Clip, reference) -> None:
    """A 399-wide frame: ffmpeg crops at int(175 / 2) = 87, torchvision's CenterCrop at 88."""
    clip = frames(399, 224, seed=1)
    got = recipe.video_features(clip)["clip_features"][0]
    floor = open_clip_image_feature(reference, clip[0, 0, :, :398])  # its centre crop starts at 87
    rounded = open_clip_image_feature(reference, clip[0, 0])
    np.testing.assert_allclose(got, floor, atol=1e-4)
    assert not np.allclose(got, rounded, atol=1e-4)


def test_frames_not_scaled_by_the_decoder_are_scaled_here(recipe: Clip, reference) -> None:
    clip = frames(640, 360, seed=2)  # scaled to 398x224: both crops start at column 87
    got = recipe.video_features(clip)["clip_features"][0]
    expected = open_clip_image_feature(reference, clip[0, 0])  # PIL's bicubic, within 1 level
    np.testing.assert_allclose(got, expected, atol=5e-3)


def test_text_features_are_ln_final_token_states_up_to_eot(recipe: Clip, reference) -> None:
    query = "A man is cooking pasta in the kitchen."
    states = recipe.text_features(query)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    assert states.shape == (len(tokenizer.encode(query)) + 2, 512)
    assert states.dtype == np.float32 and np.isfinite(states).all()
    model = reference[0]
    with torch.inference_mode():
        pooled = model.encode_text(tokenizer([query]))[0]  # the EOT state, projected
        projected = torch.from_numpy(states[-1]) @ model.text_projection
    np.testing.assert_allclose(projected, pooled, atol=1e-4)


def test_long_queries_keep_at_most_32_tokens_ending_with_eot(recipe: Clip, reference) -> None:
    query = " ".join(["word"] * 50)
    states = recipe.text_features(query)
    assert states.shape == (MAX_TEXT_TOKENS, 512)
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    ids = [tokenizer.sot_token_id, *tokenizer.encode(query)[:30], tokenizer.eot_token_id]
    tokens = torch.zeros(1, 77, dtype=torch.long)
    tokens[0, : len(ids)] = torch.tensor(ids)
    model = reference[0]
    with torch.inference_mode():
        pooled = model.encode_text(tokens)[0]
        projected = torch.from_numpy(states[-1]) @ model.text_projection
    np.testing.assert_allclose(projected, pooled, atol=1e-4)


def test_weights_that_do_not_fit_name_the_file_and_the_misfit(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    safetensors_torch.save_file(
        {"visual.proj": torch.zeros(3, 3), "head.weight": torch.zeros(2)}, str(path)
    )
    with pytest.raises(ValueError, match=re.escape(str(path))) as error:
        Clip(ExtractOptions(weights={"clip": path}))
    message = str(error.value)
    assert "visual.proj (3, 3) (expected (768, 512))" in message
    assert "unexpected head.weight" in message
    assert "missing" in message


def test_unreadable_weights_and_no_weights_are_value_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a weight file")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Clip(ExtractOptions(weights={"clip": path}))
    with pytest.raises(ValueError, match="weight file 'clip'"):
        Clip(ExtractOptions())
