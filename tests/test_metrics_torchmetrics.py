"""The torchmetrics classes: keys, equality with the functional twins, and state merging as DDP
does it (``merge_state``, a manual ``cat`` of list states, and a real two-process gloo run)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vhd.metrics import (
    MomentRetrievalMetric,
    QVHighlightsSaliencyMetric,
    TVSumMetric,
    YouTubeHighlightsMetric,
)
from vhd.metrics import functional as F


def qvhighlights_data(count: int = 12, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Small random queries with several windows, saliency and predictions of varying length."""
    rng = np.random.default_rng(seed)
    records, predictions = [], []
    for qid in range(count):
        starts = rng.choice(np.arange(0, 140, 2), size=int(rng.integers(1, 4)), replace=False)
        windows = [[int(s), int(min(150, s + 2 * rng.integers(1, 30)))] for s in sorted(starts)]
        clip_ids = sorted({c for s, e in windows for c in range(s // 2, e // 2)})
        records.append(
            {
                "qid": qid,
                "duration": 150,
                "relevant_windows": windows,
                "relevant_clip_ids": clip_ids,
                "saliency_scores": rng.integers(0, 5, size=(len(clip_ids), 3)).tolist(),
            }
        )
        guesses = [
            [s + rng.normal(scale=5), e + rng.normal(scale=5), rng.uniform()] for s, e in windows
        ]
        guesses += [[s, s + rng.uniform(2, 40), rng.uniform()] for s in rng.uniform(0, 140, 5)]
        predictions.append(
            {
                "qid": qid,
                "pred_relevant_windows": sorted(guesses, key=lambda w: -w[2]),
                "pred_saliency_scores": rng.normal(size=75 + int(rng.integers(-2, 3))).tolist(),
            }
        )
    return predictions, records


def highlight_data(tvsum: bool, count: int = 9, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    records, predictions = [], []
    for index in range(count):
        clips = int(rng.integers(12, 30))
        label = (
            rng.integers(1, 6, size=(clips, 20)) if tvsum else rng.integers(0, 2, size=(clips, 1))
        )
        domain = ["dog", "skiing", "surfing"][index % 3]
        records.append({"qid": f"v{index}", "label": label.tolist(), "domain": domain})
        predictions.append(
            {"qid": f"v{index}", "pred_saliency_scores": rng.normal(size=clips).tolist()}
        )
    return predictions, records


CASES = {
    "moments": (MomentRetrievalMetric, qvhighlights_data, F.qvhighlights_mr),
    "charades": (
        lambda: MomentRetrievalMetric("charades"),
        qvhighlights_data,
        lambda p, g: F.moment_retrieval(p, g, "charades"),
    ),
    "saliency": (QVHighlightsSaliencyMetric, qvhighlights_data, F.qvhighlights_hl),
    "youtube": (YouTubeHighlightsMetric, lambda: highlight_data(False), F.youtube_map),
    "tvsum": (TVSumMetric, lambda: highlight_data(True, count=12), F.tvsum_map),
}


def as_floats(results: dict) -> dict[str, float]:
    return {key: float(value) for key, value in results.items()}


def same_figures(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal up to the order of summation (merge_state puts the incoming rows first)."""
    return a.keys() == b.keys() and a == pytest.approx(b, rel=1e-12, nan_ok=True)


@pytest.mark.parametrize("case", list(CASES))
def test_metric_equals_its_functional_twin(case: str) -> None:
    make, data, twin = CASES[case]
    predictions, records = data()
    metric = make()
    metric.update(predictions[:5], records[:5])
    metric.update(predictions[5:], records[5:])
    computed = as_floats(metric.compute())
    expected = twin(predictions, records)
    assert computed == {key: expected[key] for key in computed}


@pytest.mark.parametrize("case", list(CASES))
def test_merged_halves_equal_one_pass(case: str) -> None:
    make, data, _ = CASES[case]
    predictions, records = data()
    whole, first, second = make(), make(), make()
    whole.update(predictions, records)
    first.update(predictions[:4], records[:4])
    second.update(predictions[4:], records[4:])
    first.merge_state(second)
    assert same_figures(as_floats(first.compute()), as_floats(whole.compute()))
    # The same by hand: list states are concatenated, as dist_reduce_fx="cat" gathers them.
    by_hand, a, b = make(), make(), make()
    a.update(predictions[:4], records[:4])
    b.update(predictions[4:], records[4:])
    for name in by_hand._defaults:
        setattr(by_hand, name, getattr(a, name) + getattr(b, name))
    by_hand._update_count = 1
    assert same_figures(as_floats(by_hand.compute()), as_floats(whole.compute()))


def test_compute_keys() -> None:
    qv = MomentRetrievalMetric()
    qv.update(*qvhighlights_data(2))
    keys = set(qv.compute())
    brief = {"MR-full-mAP", "MR-full-mAP@0.5", "MR-full-mAP@0.75", "MR-short-mAP", "MR-middle-mAP",
             "MR-long-mAP", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-R1@0.95"}  # fmt: skip
    assert brief <= keys
    charades = MomentRetrievalMetric("tacos")
    charades.update(*qvhighlights_data(2))
    assert {"MR-full-R1@0.3", "MR-full-R1@0.5", "MR-full-R1@0.7", "MR-full-mIoU"} <= set(
        charades.compute()
    )
    saliency = QVHighlightsSaliencyMetric()
    saliency.update(*qvhighlights_data(2))
    assert set(saliency.compute()) == {
        f"HL-min-{level}-{fig}" for level in ("Fair", "Good", "VeryGood") for fig in ("mAP", "Hit1")
    }
    youtube = YouTubeHighlightsMetric()
    youtube.update(*highlight_data(False))
    assert set(youtube.compute()) == {
        "mAP", "mAP-domain-avg", "mAP/dog", "mAP/skiing", "mAP/surfing"
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown moment retrieval dataset"):
        MomentRetrievalMetric("activitynet")


def test_saliency_skips_ground_truth_without_ratings() -> None:
    predictions, records = qvhighlights_data(4)
    unrated = [{**record, "saliency_scores": None} for record in records[2:]]
    metric = QVHighlightsSaliencyMetric()
    metric.update(predictions, records[:2] + unrated)
    assert as_floats(metric.compute()) == F.qvhighlights_hl(predictions[:2], records[:2])


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_reset_and_empty_give_nan() -> None:
    metric = MomentRetrievalMetric()
    metric.update(*qvhighlights_data(3))
    assert not math.isnan(float(metric.compute()["MR-full-mAP"]))
    metric.reset()
    assert math.isnan(float(metric.compute()["MR-full-mAP"]))
    assert math.isnan(float(TVSumMetric().compute()["top5-mAP"]))
    assert math.isnan(float(QVHighlightsSaliencyMetric().compute()["HL-min-Fair-mAP"]))


# -- a real DDP run: two gloo processes, uneven shards ------------------------------------------
def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        # batches of 3 dealt out in turn (as vhd's WholeBatches sampler does), so the gathered
        # rows are out of split order: rank 0 holds 0-2, 6-8, rank 1 3-5, 9-11 and 3 again
        shards = {0: [0, 1, 2, 6, 7, 8], 1: [3, 4, 5, 9, 10, 11, 3]}
        results = {}
        for name in ("moments", "saliency", "tvsum"):
            make, data, _ = CASES[name]
            predictions, records = data()
            metric = make()
            for batch in (shards[rank][:3], shards[rank][3:6], shards[rank][6:]):
                metric.update(
                    [predictions[i] for i in batch], [records[i] for i in batch], order=batch
                )
            results[name] = as_floats(metric.compute())
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_two_processes_equal_one_pass(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for name, computed in results.items():
            make, data, _ = CASES[name]
            whole = make()
            whole.update(*data())
            assert computed == as_floats(whole.compute()), (rank, name)  # to the last digit
