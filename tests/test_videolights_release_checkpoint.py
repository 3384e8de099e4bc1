"""Release checkpoints load into vhd: every key of the release's state dict, at the sizes of its
QVHighlights, Charades-STA and TVSum scripts, in its file layout ({"model", "optimizer",
"lr_scheduler", "epoch", "opt"}, as ``video_lights/train.py`` saves), read with
``weights_only=True`` and strict-loaded. The keys and shapes were listed from the release by
``benchmarks/videolights_golden.py`` (``tests/fixtures/videolights_golden``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch

from tests.videolights_golden_helpers import RELEASE_SHAPES
from vhd.models import VideoLights
from vhd.models.videolights import (
    VideoLightsNet,
    convert_official_state_dict,
    load_checkpoint_weights,
)

DIMS = {  # (video, text) of the release's scripts
    "qvhighlights": (3586, 1280),
    "charades": (3586, 1280),
    "tvsum": (2050, 512),
}
OPTIONS = {  # a sample of the release's option namespace, types as its config.py leaves them
    "qvhighlights": dict(dset_name="hl", clip_length=2, max_v_l=75, lr=1e-4, bsz=32),
    "charades": dict(dset_name="charadesSTA", clip_length=1, max_v_l=75, lr=1e-4, bsz=32),
    "tvsum": dict(dset_name="tvsum", clip_length=2, max_v_l=1000, lr=1e-3, bsz=4),
}


def release_shapes(case: str) -> dict[str, list[int]]:
    return json.loads(RELEASE_SHAPES.read_text())[case]


def release_checkpoint(case: str, model: dict[str, torch.Tensor], path: Path) -> Path:
    """A file laid out as the release's ``train.py`` saves it. Values are broadcast scalars
    (one stored number per tensor) so the full-size file stays small."""
    parameters = [torch.nn.Parameter(torch.zeros(1)) for _ in model]
    optimizer = torch.optim.AdamW(parameters, lr=OPTIONS[case]["lr"], weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=400, gamma=0.1)
    optimizer_state = optimizer.state_dict()
    optimizer_state["state"] = {
        index: {
            "step": torch.tensor(7.0),
            "exp_avg": torch.zeros(1).expand(shape.shape),
            "exp_avg_sq": torch.zeros(1).expand(shape.shape),
        }
        for index, shape in enumerate(model.values())
    }
    video_dim, text_dim = DIMS[case]
    opt = argparse.Namespace(
        **OPTIONS[case], v_feat_dim=video_dim, t_feat_dim=text_dim, hidden_dim=256,
        v_feat_dirs=["features/slowfast_features", "features/clip_features"],
        device=torch.device("cpu"), results_dir="results/exp", resume=None, seed=2018,
    )  # fmt: skip
    torch.save(
        {
            "model": model,
            "optimizer": optimizer_state,
            "lr_scheduler": scheduler.state_dict(),
            "epoch": 6,
            "opt": opt,
        },
        path,
    )
    return path


def numbered_state(case: str) -> dict[str, torch.Tensor]:
    """Every release key, each tensor filled with its own index (to check where it lands)."""
    return {
        name: torch.tensor(float(index)).expand(shape)
        for index, (name, shape) in enumerate(release_shapes(case).items())
    }


@pytest.mark.parametrize("case", list(DIMS))
def test_release_checkpoint_strict_loads(case: str, tmp_path: Path) -> None:
    state = numbered_state(case)
    path = release_checkpoint(case, state, tmp_path / "model_best.ckpt")
    video_dim, text_dim = DIMS[case]
    module = VideoLights(video_dim=video_dim, text_dim=text_dim)
    module.load_pretrained(path)  # weights_only=True, strict
    ours = module.net.state_dict()
    assert len(ours) == len(state)
    for name, value in state.items():
        (converted,) = convert_official_state_dict({name: value})
        assert torch.equal(ours[converted], value.reshape(ours[converted].shape)), name


def test_release_checkpoint_is_read_with_weights_only(tmp_path: Path) -> None:
    """The file holds an option namespace: a plain ``weights_only=True`` load refuses it, the
    loader allows exactly that class."""
    path = release_checkpoint("tvsum", numbered_state("tvsum"), tmp_path / "model.ckpt")
    with pytest.raises(Exception, match="Namespace"):
        torch.load(path, weights_only=True)
    assert len(load_checkpoint_weights(path)) == len(release_shapes("tvsum"))


def test_a_single_missing_or_unmapped_key_fails() -> None:
    """For every key of the release: without it the strict load fails, and under a name no
    rule maps (or maps to a module vhd lacks) it fails too. (A network on the meta device:
    the same keys and shapes, no memory, so 500 loads take a second.)"""
    with torch.device("meta"):
        net = VideoLightsNet()
    state = numbered_state("qvhighlights")
    for key in state:
        others = {name: value for name, value in state.items() if name != key}
        with pytest.raises(RuntimeError, match="Missing key"):
            net.load_state_dict(convert_official_state_dict(others), assign=True)
        with pytest.raises((RuntimeError, KeyError)):
            renamed = {**others, f"{key}_unmapped": state[key]}
            net.load_state_dict(convert_official_state_dict(renamed), assign=True)
    net.load_state_dict(convert_official_state_dict(state), assign=True)  # all of them load


def test_a_file_without_one_key_fails(tmp_path: Path) -> None:
    state = numbered_state("charades")
    state.pop("transformer.decoder.layers.2.ca_v_proj.bias")
    path = release_checkpoint("charades", state, tmp_path / "model_best.ckpt")
    with pytest.raises(RuntimeError, match=re.escape("decoder.layers.2.ca_v_proj.bias")):
        VideoLights().load_pretrained(path)
