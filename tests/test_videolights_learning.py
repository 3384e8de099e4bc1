"""VideoLights learns the planted moments: clearly above a random predictor on MR and HD mAP."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_baseline import learned_and_chance
from tests.test_videolights_cli import CONFIGS, run_args
from vhd.datamodules.synthetic import generate

pytestmark = pytest.mark.usefixtures("two_threads")

# The synthetic config's model (same class, same losses) at a compact size, with the light
# regularisation and the higher learning rate that let it learn within a few hundred steps.
COMPACT = {"hidden_dim": 64, "ffn_dim": 128, "num_heads": 4, "contrastive_dim": 16,
           "input_dropout": 0.1, "dropout": 0.0, "lr": 2e-3}  # fmt: skip
EPOCHS = 25


def test_videolights_beats_chance(tmp_path: Path) -> None:
    data = generate("moments", tmp_path / "data", seed=1, size="tiny", num_videos=80, num_clips=40)
    args = [
        *run_args(CONFIGS / "videolights_synthetic.yaml", data, tmp_path / "run", tiny=False),
        "--data.init_args.synthetic=null",
        "--data.init_args.batch_size=8",
        f"--trainer.max_epochs={EPOCHS}",
        f"--trainer.check_val_every_n_epoch={EPOCHS}",  # select on the final validation only
        *[f"--model.init_args.{key}={value}" for key, value in COMPACT.items()],
    ]
    learned, chance = learned_and_chance(data, tmp_path / "run", args)
    assert learned["MR-full-mAP"] > chance["MR-full-mAP"] + 10
    assert learned["MR-full-R1@0.5"] > chance["MR-full-R1@0.5"] + 10
    assert learned["HL-min-Fair-mAP"] > chance["HL-min-Fair-mAP"] + 20
