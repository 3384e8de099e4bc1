"""``clip``: CLIP ViT-B/32 (OpenAI weights) frame and query features, as Moment-DETR made them.

The released QVHighlights ``clip_features`` / ``clip_text_features`` come from Moment-DETR's
extractor (jayleicn/moment_detr ``run_on_video/``, taken from HERO_Video_Feature_Extractor's
``clip/``). Reading of that code, which this recipe follows:

- Frame instant: ``data_utils.py`` ``VideoLoader.read_video_from_file`` (l.153) runs ffmpeg's
  ``fps`` filter at ``1/clip_len`` (``run.py`` l.14-18: 2 s). Since ffmpeg 4.1 that filter
  (round=near) emits, for output n, the last frame earlier than ``(n + 0.5) * clip_len``: the
  frame shown at the middle of clip n, hence ``frame_offsets = (0.5,)``. (ffmpeg 3.x's older
  filter took the first frame at or after ``(n - 0.5) * clip_len`` instead, one clip earlier.)
- Resize and crop: ``_get_output_dim`` (l.125-131) scales the short side to 224 and the long
  side to ``int(long * 224 / short)`` with ffmpeg ``scale`` (bicubic in the ffmpeg CLI), then
  crops 224x224 at ``int((side - 224) / 2)`` (l.157-159): the floor, one pixel left of
  torchvision's ``CenterCrop`` (which rounds half to even) for some odd margins.
- Pixels: ``Preprocessing`` (l.77-89) divides by 255 and normalises with CLIP's mean/std.
- Video feature: ``encode_video`` -> ``encode_image`` (l.29): the class token after ``ln_post``
  times ``visual.proj`` (``clip/model.py`` l.231-234), 512-d, not L2-normalised.
- Text feature: ``encode_text`` (l.35-47) tokenises with ``clip.tokenize(context_length=77)``,
  which keeps SOT + at most 30 BPE tokens + EOT (``clip/clip.py`` l.187, max_valid_length 32),
  runs the causal text transformer over all 77 positions and keeps the first ``valid_len`` rows
  of ``last_hidden_state = ln_final(x)`` (``clip/model.py`` l.346-352): 512-d token states
  before ``text_projection``. ``valid_len`` counts non-zero ids; that is SOT..EOT except for a
  bare "!" BPE piece (id 0, e.g. inside "!!"), a quirk not copied: here every row up to EOT.

Remaining differences: the reference ran fp16 on a GPU (HERO stored float16), this runs
float32; resizing is done by the runner's decoder, which must use swscale's bicubic to match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import open_clip
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from vhd.extract.recipes.base import (
    ExtractOptions,
    Output,
    Recipe,
    WeightFile,
    load_state_dict_file,
)

MODEL_NAME = "ViT-B-32-quickgelu"  # OpenAI's ViT-B/32 was trained with QuickGELU
PRETRAINED = "openai"
SIZE = 224  # short side and crop
DIM = 512
MAX_TEXT_TOKENS = 32  # SOT + 30 BPE tokens + EOT, as Moment-DETR's tokenize
SHOWN_PROBLEMS = 3  # keys listed per kind in a weight-file error


def build_model() -> open_clip.CLIP:
    """ViT-B/32 from open_clip's bundled config; randomly initialised, weights come later."""
    return open_clip.CLIP(**open_clip.get_model_config(MODEL_NAME))


def state_dict_problems(
    expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]
) -> list[str]:
    """Why ``given`` cannot load strictly into a model holding ``expected``; empty if it can."""

    def listed(keys: list[str]) -> str:
        more = f" and {len(keys) - SHOWN_PROBLEMS} more" if len(keys) > SHOWN_PROBLEMS else ""
        return ", ".join(keys[:SHOWN_PROBLEMS]) + more

    problems = []
    if missing := sorted(set(expected) - set(given)):
        problems.append(f"missing {listed(missing)}")
    if unexpected := sorted(set(given) - set(expected)):
        problems.append(f"unexpected {listed(unexpected)}")
    shapes = [
        f"{key} {tuple(given[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in sorted(set(expected) & set(given))
        if given[key].shape != expected[key].shape
    ]
    if shapes:
        problems.append(f"wrong shape {listed(shapes)}")
    return problems


def load_model(path: Path) -> open_clip.CLIP:
    """The model with the weights of ``path``; a ``ValueError`` names the file and the misfit."""
    try:
        state = load_state_dict_file(path)
    except Exception as error:  # safetensors/pickle errors say little about which file
        raise ValueError(f"cannot read CLIP weights {path}: {error}") from error
    model = build_model()
    if problems := state_dict_problems(model.state_dict(), state):
        raise ValueError(f"{path} is not open_clip {MODEL_NAME} weights: {'; '.join(problems)}")
    model.load_state_dict(state)
    return model.eval()


class Clip(Recipe):
    name = "clip"
    summary = "CLIP ViT-B/32 (OpenAI): frame at each clip's middle (512-d), query tokens (512-d)"
    weight_files: ClassVar[dict[str, WeightFile]] = {
        "clip": WeightFile(
            filename="open_clip_vit_b32_openai.safetensors",
            url="https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/"
            "open_clip_model.safetensors",
            description="open_clip ViT-B-32 with OpenAI weights (open_clip_model.safetensors)",
        )
    }
    frame_offsets: ClassVar[tuple[float, ...]] = (0.5,)

    def __init__(self, options: ExtractOptions) -> None:
        super().__init__(options)
        if "clip" not in options.weights:
            raise ValueError("recipe 'clip' needs its weight file 'clip' in options.weights")
        self.model = load_model(options.weights["clip"]).to(self.device)
        self.tokenizer = open_clip.get_tokenizer(MODEL_NAME)

    @classmethod
    def random_weights(cls, folder: Path) -> dict[str, Path]:
        from safetensors.torch import save_file

        path = Path(folder) / "clip_random.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            key: value.half().contiguous() for key, value in build_model().state_dict().items()
        }
        save_file(state, str(path))  # half precision: the loader casts, the file is half as big
        return {"clip": path}

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """Short side 224, long side truncated, as Moment-DETR's ``_get_output_dim``."""
        if height >= width:
            return SIZE, int(height * SIZE / width)
        return int(width * SIZE / height), SIZE

    @classmethod
    def outputs(cls) -> list[Output]:
        return [
            Output("clip_features", DIM, "video"),
            Output("clip_text_features", DIM, "text", key="last_hidden_state"),
        ]

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 -> (N, 3, 224, 224) normalised float, cropped as ffmpeg crops."""
        if min(frames.shape[-2:]) != SIZE:  # not scaled by the decoder: scale it here
            frames = F.resize(frames, [SIZE], InterpolationMode.BICUBIC, antialias=True)
        height, width = frames.shape[-2:]
        frames = F.crop(frames, (height - SIZE) // 2, (width - SIZE) // 2, SIZE, SIZE)
        frames = F.to_dtype(frames, torch.float32, scale=True)
        return F.normalize(frames, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)

    @torch.inference_mode()
    def video_features(self, clips: np.ndarray) -> dict[str, np.ndarray]:
        frames = torch.from_numpy(np.ascontiguousarray(clips[:, 0])).permute(0, 3, 1, 2)
        features = []
        for start in range(0, len(frames), self.options.batch_size):
            batch = self.pixels(frames[start : start + self.options.batch_size].to(self.device))
            features.append(self.model.encode_image(batch).float().cpu())
        empty = torch.zeros(0, DIM)
        return {"clip_features": torch.cat(features).numpy() if features else empty.numpy()}

    @torch.inference_mode()
    def text_features(self, query: str) -> np.ndarray:
        ids = self.tokenizer.encode(query)[: MAX_TEXT_TOKENS - 2]
        ids = [self.tokenizer.sot_token_id, *ids, self.tokenizer.eot_token_id]
        tokens = torch.zeros(1, self.model.context_length, dtype=torch.long)
        tokens[0, : len(ids)] = torch.tensor(ids)
        return self.token_states(tokens.to(self.device))[0, : len(ids)].float().cpu().numpy()

    def token_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 77) ids -> (B, 77, 512) ``ln_final`` outputs: ``encode_text`` before pooling.

        Caught with a hook so that open_clip's own text path (masking, layout) is what runs.
        """
        states: list[torch.Tensor] = []
        hook = self.model.ln_final.register_forward_hook(lambda _, __, out: states.append(out))
        try:
            self.model.encode_text(tokens)
        finally:
            hook.remove()
        return states[0]

    def describe(self) -> dict[str, Any]:
        return {
            "model": f"open_clip {MODEL_NAME}",
            "pretrained": PRETRAINED,
            "input_size": SIZE,
            "frame_offsets": list(self.frame_offsets),
            "pixels": "short side 224 (bicubic), crop 224 at floor(margin / 2), CLIP mean/std",
            "video_feature": "encode_image (after visual.proj), not normalised",
            "text_feature": f"ln_final token states before text_projection, SOT..EOT, at most "
            f"{MAX_TEXT_TOKENS} tokens",
        }
