"""The trivial baseline learns the planted structure: clearly above a random predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.test_cli import overrides
from vhd.datamodules.annotations import read_jsonl, strip_private
from vhd.datamodules.synthetic import generate
from vhd.lightning_cli import VHDCLI
from vhd.metrics import functional as F
from vhd.models.base import VHDModule
from vhd.models.baseline import threshold_windows


def random_predictions(ground_truth: list[dict], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    predictions = []
    for record in ground_truth:
        duration = record["duration"]
        starts = rng.uniform(0, duration - 2, size=10)
        ends = np.minimum(duration, starts + rng.uniform(2, duration / 3, size=10))
        scores = np.sort(rng.uniform(size=10))[::-1]
        predictions.append(
            {
                "qid": record["qid"],
                "pred_relevant_windows": np.stack([starts, ends, scores], 1).tolist(),
                "pred_saliency_scores": rng.uniform(size=int(duration / 2)).tolist(),
            }
        )
    return predictions


def test_threshold_windows_finds_the_peak() -> None:
    saliency = torch.tensor([0.0, 0.1, 0.9, 1.0, 0.8, 0.1, 0.0, 0.2])
    windows = threshold_windows(saliency, clip_len=2.0, duration=16.0, thresholds=[0.5], top_k=5)
    assert windows[0][:2] == [4.0, 10.0]


def learned_and_chance(
    data: Path, run_dir: Path, args: list[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Fit with ``args`` (which write to ``run_dir``), test the best checkpoint, and return its
    test metrics beside those of random predictions for the same test queries."""
    VHDCLI(VHDModule, subclass_mode_model=True, subclass_mode_data=True, args=["fit", *args])
    ckpt = str(run_dir / "checkpoints" / "best.ckpt")
    cli = VHDCLI(
        VHDModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=["test", *args, f"--ckpt_path={ckpt}"],
    )
    learned = {k.removeprefix("test/"): float(v) for k, v in cli.trainer.callback_metrics.items()}
    ground_truth = [strip_private(r) for r in read_jsonl(data / "annotations" / "test.jsonl")]
    chance_predictions = random_predictions(ground_truth)
    chance = {
        **F.qvhighlights_mr(chance_predictions, ground_truth),
        **F.qvhighlights_hl(chance_predictions, ground_truth),
    }
    return learned, chance


def test_baseline_beats_chance(tmp_path: Path) -> None:
    data = generate("moments", tmp_path / "data", seed=1, size="tiny", num_videos=80, num_clips=40)
    args = [*overrides(data, tmp_path / "run"), "--trainer.max_epochs=8"]
    learned, chance = learned_and_chance(data, tmp_path / "run", args)
    assert learned["MR-full-mAP"] > chance["MR-full-mAP"] + 10
    assert learned["MR-full-R1@0.5"] > chance["MR-full-R1@0.5"] + 10
    assert learned["HL-min-Fair-mAP"] > chance["HL-min-Fair-mAP"] + 10
