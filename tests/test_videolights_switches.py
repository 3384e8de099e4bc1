"""VideoLights switches between the release's behaviour (the default) and the corrected or paper
form, each tested both ways, and the configs the release scripts have (issue 17, items 3-4)."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.trainer.states import TrainerFn

from tests.test_videolights import TINY
from vhd.datamodules import MomentDataModule
from vhd.datamodules.holdout import HoldoutError, held_out_videos
from vhd.datamodules.targets import clamp_windows, windows_to_center_width
from vhd.lightning_cli import VHDCLI
from vhd.losses.videolights import VideoLightsCriterion
from vhd.models import VideoLights
from vhd.models.base import VHDModule
from vhd.models.videolights import (
    FRA,
    ConfigError,
    ReleaseEarlyStopping,
    VideoLightsNet,
    postprocess_windows,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Two pairs of unequal video (6, 4) and text (5, 3) lengths."""
    generator = torch.Generator().manual_seed(seed)
    video, text = (
        torch.randn(2, 6, 10, generator=generator),
        torch.randn(2, 5, 6, generator=generator),
    )
    video_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    text_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    return video, video_mask, text, text_mask


# -- 1. predicted windows: the release's [0, 150] s, or the video's duration -----------------------
def spans_for(seconds: list[list[float]], duration: float) -> torch.Tensor:
    bounds = torch.tensor(seconds)
    return torch.stack([bounds.mean(1), bounds[:, 1] - bounds[:, 0]], dim=1) / duration


def test_windows_clamp_to_150_s_as_released_or_to_the_duration() -> None:
    spans, scores = spans_for([[10.0, 28.0], [-3.0, 151.0]], 20.0), torch.tensor([0.9, 0.1])
    release = postprocess_windows(spans, scores, 20.0, 1.0, max_end=150.0)
    assert release == [[10.0, 28.0, 0.9], [0.0, 150.0, 0.1]]  # past the 20 s video, as released
    duration = postprocess_windows(spans, scores, 20.0, 1.0)
    assert duration == [[10.0, 20.0, 0.9], [0.0, 20.0, 0.1]]
    unclamped = postprocess_windows(spans, scores, 20.0, 2.0, max_end=None)  # release, TACoS
    assert unclamped == [[10.0, 28.0, 0.9], [-4.0, 152.0, 0.1]]  # rounding only (half to even)


def stub_prediction(model: VideoLights, spans: torch.Tensor) -> None:
    """The model's forward replaced by fixed outputs: one query, the given (B, 1, 2) spans."""
    batch = spans.shape[0]
    output = SimpleNamespace(
        logits=torch.zeros(1, batch, 1, 2), spans=spans[None], saliency=torch.zeros(batch, 4)
    )
    model.forward = lambda batch, for_loss=True: output  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("window_clamp", "protocol", "video_dim", "expected_end"),
    [
        ("release", "charades", 10, 28.0),  # clamped at 150 s only
        ("duration", "charades", 10, 20.0),
        ("release", "charades", 4098, 28.0),  # VGG features: 360 s
        ("release", "tacos", 10, 28.0),  # rounding only
        ("release", None, 10, 20.0),  # own videos: always the video
    ],
)
def test_predictions_follow_window_clamp(
    window_clamp: str, protocol: str | None, video_dim: int, expected_end: float
) -> None:
    model = VideoLights(**{**TINY, "video_dim": video_dim}, window_clamp=window_clamp)
    model.protocol = protocol
    expected_bound = {"charades": 360.0 if video_dim == 4098 else 150.0, "tacos": None}
    if window_clamp == "release" and protocol is not None:
        assert model.release_max_end() == expected_bound[protocol]
    else:
        assert model.release_max_end() == "duration"
    stub_prediction(model, spans_for([[10.0, 28.0]], 20.0)[None])
    meta = {"qid": 1, "vid": "v", "duration": 20.0, "clip_len": 1.0, "num_clips": 4}
    (prediction,) = model.predict_batch({"meta": [meta]})
    assert prediction["pred_relevant_windows"] == [[10.0, expected_end, 0.5]]


def test_window_clamp_rejects_unknown_values() -> None:
    with pytest.raises(ConfigError, match="window_clamp"):
        VideoLights(**TINY, window_clamp="video")


# -- 2. training span targets: as annotated (release) or clamped to the features -------------------
def test_windows_to_center_width_is_not_clamped() -> None:
    windows = np.array([[16.0, 21.0], [-1.0, 4.0]])
    np.testing.assert_allclose(
        windows_to_center_width(windows, 20.0), [[0.925, 0.25], [0.075, 0.25]], rtol=1e-6
    )
    np.testing.assert_allclose(
        clamp_windows(np.array([[16.0, 21.0], [20.5, 21.0]]), 20.0), [[16, 20]]
    )


def write_moments(root: Path, records: list[dict], clips: int, clip_len: float = 2.0) -> None:
    for folder in ("video", "text"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = "".join(json.dumps(record) + "\n" for record in records)
    (root / "train.jsonl").write_text(lines)
    for record in records:
        np.savez(root / "video" / f"{record['vid']}.npz", features=rng.normal(size=(clips, 4)))
        np.savez(
            root / "text" / f"qid{record['qid']}.npz", last_hidden_state=rng.normal(size=(3, 4))
        )


def moments(root: Path, **kwargs) -> MomentDataModule:
    settings = dict(
        data_root=str(root), train_file="train.jsonl", val_file="train.jsonl",
        test_file="train.jsonl", video_feature_dirs=["video"], text_feature_dir="text",
        protocol="charades", clip_len=2.0, batch_size=2, eval_batch_size=2,
    )  # fmt: skip
    return MomentDataModule(**{**settings, **kwargs})


@pytest.mark.parametrize("clamp", [False, True])
def test_span_targets_are_clamped_only_when_asked(tmp_path: Path, clamp: bool) -> None:
    record = {"qid": 7, "vid": "v7", "duration": 21.0, "query": "q",
              "relevant_windows": [[16.0, 21.0], [20.5, 21.0]]}  # fmt: skip
    write_moments(tmp_path, [record], clips=10)  # 20 s of features; windows end 1 s later
    dm = moments(tmp_path, clamp_span_targets=clamp)
    dm.setup("fit")
    windows = dm.datasets["train"][0]["windows"].numpy()
    if clamp:
        np.testing.assert_allclose(windows, [[0.9, 0.2]], rtol=1e-6)
    else:  # the release: seconds / (ctx_l x clip_len), targets past 1 kept
        np.testing.assert_allclose(windows, [[0.925, 0.25], [1.0375, 0.025]], rtol=1e-6)


# -- 3. the negative-pair pass ---------------------------------------------------------------------
@pytest.mark.parametrize("use_negative_pairs", [True, False])
def test_negative_pair_pass_can_be_switched_off(use_negative_pairs: bool) -> None:
    torch.manual_seed(0)
    net = VideoLightsNet(**TINY, use_negative_pairs=use_negative_pairs).eval()
    with torch.no_grad():
        output = net(*inputs())
        reference = VideoLightsNet(**TINY).eval()
        reference.load_state_dict(net.state_dict())
        expected = reference(*inputs())
    assert torch.equal(output.saliency, expected.saliency)  # the positive pass is the same
    if use_negative_pairs:
        assert output.saliency_negative.shape == (2, 6)
    else:
        assert output.saliency_negative is None


def saliency_inputs(negative: bool) -> tuple[SimpleNamespace, dict]:
    zeros = torch.zeros(2, 75)
    labels = torch.zeros(2, 75)
    labels[:, 10:20] = torch.arange(3, 13, dtype=torch.float32)
    output = SimpleNamespace(
        saliency=zeros, saliency_negative=zeros if negative else None, saliency_mr=None,
        video_mask=torch.ones(2, 75, dtype=torch.bool),
    )  # fmt: skip
    batch = {"saliency": labels, "saliency_pos": torch.tensor([[19, 15]] * 2),
             "saliency_neg": torch.tensor([[10, 40]] * 2)}  # fmt: skip
    return output, batch


@pytest.mark.parametrize("negative", [True, False])
def test_saliency_loss_without_negative_pairs(negative: bool) -> None:
    """Zero scores, 75 clips, B = 2: margin 0.4 + cos 2 + rank (11/12) ln(clips ranked), plus the
    neg-pair 75 ln2 when the negative pass ran (150 clips ranked then, 75 without)."""
    criterion = VideoLightsCriterion(hard_pos_neg_loss=False)
    loss = criterion.saliency_loss(*saliency_inputs(negative), epoch=0).item()
    if negative:
        expected = 0.4 + 2 + 11 / 12 * math.log(150) + 75 * math.log(2)
    else:
        expected = 0.4 + 2 + 11 / 12 * math.log(75)
    assert loss == pytest.approx(expected, abs=1e-4)


def test_training_step_runs_without_negative_pairs() -> None:
    model = VideoLights(**TINY, use_negative_pairs=False)
    model._trainer = None
    video, video_mask, text, text_mask = inputs()
    batch = {
        "video": video, "video_mask": video_mask, "query": text, "query_mask": text_mask,
        "saliency": torch.tensor([[0, 3, 5, 0, 0, 0], [4, 0, 0, 0, 0, 0]], dtype=torch.float32),
        "saliency_pos": torch.tensor([[2, 1], [0, 0]]),
        "saliency_neg": torch.tensor([[0, 4], [2, 3]]),
        "windows": [torch.tensor([[0.3, 0.3]]), torch.tensor([[0.1, 0.2]])],
    }  # fmt: skip
    loss, terms = model.criterion(model(batch), batch)
    loss.backward()
    assert torch.isfinite(loss) and "loss_saliency" in terms


# -- 4. FRA's word-clip correspondence -------------------------------------------------------------
def fra_parts(correlation: str, seed: int) -> tuple[FRA, torch.Tensor]:
    """The correspondence columns of FRA's mixer input, as the training path builds them."""
    torch.manual_seed(0)
    fra = FRA(8, dropout=0.0, correlation=correlation)
    generator = torch.Generator().manual_seed(seed)
    video, text = (
        torch.randn(2, 5, 8, generator=generator),
        torch.randn(2, 4, 8, generator=generator),
    )
    text_mask = torch.tensor([[True] * 4, [True, True, False, False]])
    return fra, fra.correspondence(video, text, text_mask).expand(2, 5, 8), video, text, text_mask


def test_fra_release_correspondence_is_a_constant() -> None:
    fra, first, *_ = fra_parts("release", seed=1)
    _, second, *_ = fra_parts("release", seed=2)
    constant = (fra.c_q * fra.w_v).detach()
    assert torch.equal(first, constant.expand(2, 5, 8)) and torch.equal(first, second)


def test_fra_per_pair_correspondence_attends_over_the_valid_words() -> None:
    fra, parts, video, text, text_mask = fra_parts("per-pair", seed=1)
    for row, words in enumerate((4, 2)):
        attention = (text[row, :words] @ video[row].T).softmax(dim=0)  # (words, clips)
        expected = attention.T @ text[row, :words] * (fra.c_q * fra.w_v)
        torch.testing.assert_close(parts[row], expected.detach())
    padded = text.clone()
    padded[1, 2:] = 100.0  # padded words change nothing
    torch.testing.assert_close(fra.correspondence(video, padded, text_mask), parts)
    _, other, *_ = fra_parts("per-pair", seed=2)
    assert not torch.allclose(parts, other)


def test_fra_per_pair_mixes_the_same_by_parts_and_loads_release_weights() -> None:
    fra, _, video, text, text_mask = fra_parts("per-pair", seed=3)
    video_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    fra.eval()
    by_parts = fra(video, text, video_mask, text_mask)
    fra.train()
    fra.dropout.p = 1e-9  # the concatenating path, dropping nothing
    torch.testing.assert_close(fra(video, text, video_mask, text_mask), by_parts)
    release = FRA(8, correlation="release")
    release.load_state_dict(fra.state_dict())  # the same parameters
    release.eval()
    assert not torch.allclose(release(video, text, video_mask, text_mask), by_parts)
    with pytest.raises(ConfigError, match="fra_correlation"):
        FRA(8, correlation="paper")


# -- 5. the cap on the hard positive/negative weight W_j -------------------------------------------
@pytest.mark.parametrize(("cap", "weights"), [(None, [10, 100, 2000]), (50.0, [10, 50, 50])])
def test_hard_weight_grows_without_bound_unless_capped(cap: float | None, weights: list) -> None:
    criterion = VideoLightsCriterion(hard_pos_neg_weight_max=cap)
    assert [criterion.hard_weight(epoch) for epoch in (0, 9, 199)] == weights


@pytest.mark.parametrize(("cap", "hard"), [(None, 100 / 75), (20.0, 20 / 75)])
def test_capped_weight_scales_the_hard_losses(cap: float | None, hard: float) -> None:
    """Zero scores: hard_neg + hard_pos = W_j / 75 (reference 7.9), W_9 = 100 uncapped."""
    output, batch = saliency_inputs(negative=True)
    with_hard = VideoLightsCriterion(hard_pos_neg_weight_max=cap)
    without = VideoLightsCriterion(hard_pos_neg_loss=False)
    difference = with_hard.saliency_loss(output, batch, 9) - without.saliency_loss(output, batch, 9)
    assert difference.item() == pytest.approx(hard, abs=1e-5)


# -- 6. the release's early stopping (max_es_cnt) --------------------------------------------------
def fake_trainer(callbacks: list) -> SimpleNamespace:
    return SimpleNamespace(
        callbacks=callbacks, callback_metrics={}, fast_dev_run=False, sanity_checking=False,
        should_stop=False, state=SimpleNamespace(fn=TrainerFn.FITTING),
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision),
        val_check_interval=1.0, check_val_every_n_epoch=5, is_global_zero=True, current_epoch=0,
    )  # fmt: skip


@pytest.mark.parametrize("max_es_cnt", [200, 0, -1])
def test_early_stopping_callback_follows_max_es_cnt(max_es_cnt: int) -> None:
    model = VideoLights(**TINY, max_es_cnt=max_es_cnt)
    model._trainer = fake_trainer([])
    stoppers = [cb for cb in model.configure_callbacks() if isinstance(cb, EarlyStopping)]
    if max_es_cnt == -1:
        assert stoppers == []
    else:
        assert [type(cb) for cb in stoppers] == [ReleaseEarlyStopping]
        assert stoppers[0].patience == max_es_cnt + 1
    model._trainer = fake_trainer([EarlyStopping(monitor="val/loss")])  # the config's own wins
    assert not any(isinstance(cb, EarlyStopping) for cb in model.configure_callbacks())


@pytest.mark.parametrize(
    ("protocol", "monitor"), [("charades", "val/stop_score"), ("tvsum", "val/top5-mAP")]
)
def test_early_stopping_watches_the_main_metric(protocol: str, monitor: str) -> None:
    model = VideoLights(**TINY)
    model.protocol = protocol
    stopper = ReleaseEarlyStopping(2)
    stopper.setup(fake_trainer([]), model, "fit")
    assert stopper.monitor == monitor == model.main_metric


def test_early_stopping_stops_after_more_than_max_es_cnt_evaluations() -> None:
    """The release: es_cnt += 1 per evaluation without a better score; stop when es_cnt > 2."""
    model = VideoLights(**TINY)
    model.protocol = "charades"
    stopper, trainer = ReleaseEarlyStopping(2), fake_trainer([])
    stopper.setup(trainer, model, "fit")
    stopped = []
    for score in (1.0, 2.0, 2.0, 1.5, float("nan"), 3.0):
        trainer.callback_metrics = {"val/stop_score": torch.tensor(score)}
        stopper.on_validation_end(trainer, model)
        stopped.append(trainer.should_stop)
    assert stopped == [False, False, False, False, True, True]


def test_max_es_cnt_below_minus_one_is_an_error() -> None:
    with pytest.raises(ConfigError, match="max_es_cnt"):
        VideoLights(**TINY, max_es_cnt=-2)


# -- a validation split held out from train --------------------------------------------------------
def test_held_out_videos_are_a_fixed_share() -> None:
    vids = [f"vid{index}" for index in range(20)]
    chosen = held_out_videos(vids, 0.25)
    assert len(chosen) == 5 and chosen == held_out_videos(list(reversed(vids)) * 2, 0.25)
    assert len(held_out_videos(vids[:2], 0.01)) == 1 and len(held_out_videos(vids[:2], 0.99)) == 1
    with pytest.raises(HoldoutError):
        held_out_videos(vids, 1.0)


@pytest.mark.parametrize("holdout", [0.0, 0.5])
def test_val_holdout_splits_the_train_file_by_video(tmp_path: Path, holdout: float) -> None:
    records = [
        {"qid": 10 * video + query, "vid": f"v{video}", "duration": 20.0, "query": "q",
         "relevant_windows": [[2.0, 6.0]]}
        for video in range(6) for query in range(2)
    ]  # fmt: skip
    write_moments(tmp_path, records, clips=10)
    dm = moments(tmp_path, val_file=None if holdout else "train.jsonl", val_holdout=holdout)
    dm.setup("fit")
    train = {(r["qid"], r["vid"]) for r in dm.datasets["train"].records}
    val = {(r["qid"], r["vid"]) for r in dm.datasets["val"].records}
    if holdout:
        assert len(val) == 6 and train | val == {(r["qid"], r["vid"]) for r in records}
        assert not {vid for _, vid in train} & {vid for _, vid in val}
    else:
        assert train == val and len(train) == 12
    with pytest.raises(HoldoutError, match="val_file to null"):
        moments(tmp_path, val_holdout=0.5)


# -- configs ---------------------------------------------------------------------------------------
def build(name: str) -> VHDCLI:
    return VHDCLI(VHDModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                  args=["--config", str(CONFIGS / name)])  # fmt: skip


@pytest.mark.parametrize(
    ("name", "parameters", "expected"),
    [
        ("videolights_charades_finetune.yaml", 10_796_263,
         {"pretrained_checkpoint": "runs/videolights_pretrain/checkpoints/best.ckpt",
          "contrastive_align_loss_coef": 0.3, "hard_pos_neg_loss_coef": 10.0, "max_es_cnt": 200}),
        ("videolights_charades_heldout.yaml", 10_796_263,
         {"pretrained_checkpoint": None, "contrastive_align_loss_coef": 0.3}),
        ("videolights_tvsum_finetune.yaml", 10_399_975,
         {"pretrained_checkpoint": "runs/videolights_pretrain_sf_clip/checkpoints/best.ckpt",
          "hard_pos_neg_loss_coef": 10.0, "cos_sim_loss_coef": 1.0, "lr": 1e-3, "max_es_cnt": -1}),
        ("videolights_pretrain_sf_clip.yaml", 10_399_975,
         {"contrastive_align_loss_coef": 0.01, "max_es_cnt": 100}),
    ],
)  # fmt: skip
def test_new_configs_build_the_release_recipes(name: str, parameters: int, expected: dict) -> None:
    cli = build(name)
    assert isinstance(cli.model, VideoLights)
    assert sum(p.numel() for p in cli.model.parameters()) == parameters
    assert {key: cli.model.hparams[key] for key in expected} == expected
    assert cli.config["seed_everything"] == 2018 and cli.trainer.gradient_clip_val == 0.1
    data = cli.datamodule.hparams
    if name == "videolights_charades_heldout.yaml":
        assert data.val_file is None and data.val_holdout == 0.1
        assert data.test_file == "charades_sta_test_tvr_format.jsonl"
    elif "charades" in name:  # the release selects on the test file
        assert data.val_file == data.test_file == "charades_sta_test_tvr_format.jsonl"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("videolights_*.yaml")), ids=lambda p: p.name)
def test_release_configs_show_every_switch(path: Path) -> None:
    """Complete configs name every model argument (the synthetic one: at least the switches)."""
    model = yaml.safe_load(path.read_text())["model"]["init_args"]
    switches = {"fra_correlation", "use_negative_pairs", "hard_pos_neg_weight_max", "max_es_cnt",
                "window_clamp"}  # fmt: skip
    if path.name == "videolights_synthetic.yaml":
        assert switches <= set(model)
        return
    assert set(inspect.signature(VideoLights).parameters) <= set(model)
    assert model["fra_correlation"] == "release" and model["use_negative_pairs"] is True
    assert model["window_clamp"] == "release" and model["hard_pos_neg_weight_max"] is None


def test_tvsum_sweep_override_reaches_the_criterion() -> None:
    """The documented cos_sim_loss_coef sweep: one override per value on the TVSum config."""
    cli = VHDCLI(VHDModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                 args=["--config", str(CONFIGS / "videolights_tvsum.yaml"),
                       "--model.init_args.cos_sim_loss_coef=5",
                       "--data.init_args.domain=GA"])  # fmt: skip
    assert cli.model.criterion.cos_sim_loss_coef == 5 and cli.datamodule.hparams.domain == "GA"
