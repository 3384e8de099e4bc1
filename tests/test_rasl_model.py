"""The RASL model on hand-made tensors: shapes, inference windowing, visual-only inference and
every ablation switch."""

from __future__ import annotations

import pytest
import torch

from vhd.models import RASL
from vhd.models.rasl import (
    Branch,
    CheckpointMismatch,
    SelfAttention,
    align_audio,
    min_max,
    pool_clip_rows,
    scores_to_clips,
    window_steps,
)

VIDEO_DIM, AUDIO_DIM, WINDOW = 24, 12, 10
SMALL = dict(video_dim=VIDEO_DIM, audio_dim=AUDIO_DIM, window=WINDOW, channels=(4, 8, 8), k=2)


def make_model(**overrides: object) -> RASL:
    torch.manual_seed(0)
    return RASL(**{**SMALL, **overrides})


def pretraining_batch(batch: int = 3, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {
        "video": torch.randn(batch, WINDOW, VIDEO_DIM, generator=generator),
        "audio": torch.randn(batch, WINDOW, AUDIO_DIM, generator=generator),
        "video_mask": torch.ones(batch, WINDOW, dtype=torch.bool),
        "mask": torch.rand(batch, WINDOW, generator=generator) < 0.5,
        "meta": [
            {"qid": f"v{i}", "vid": f"v{i}", "source_steps": WINDOW - 3 * i} for i in range(batch)
        ],
    }


def evaluation_batch(lengths: list[int], audio: bool = False) -> dict:
    generator = torch.Generator().manual_seed(1)
    longest = max(lengths)
    mask = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]
    batch = {
        "video": torch.randn(len(lengths), longest, VIDEO_DIM, generator=generator)
        * mask[..., None],
        "video_mask": mask,
        "meta": [{"qid": f"v{i}", "vid": f"v{i}", "num_clips": n} for i, n in enumerate(lengths)],
    }
    if audio:
        batch["audio"] = torch.randn(len(lengths), longest, AUDIO_DIM, generator=generator)
    return batch


def test_paper_defaults() -> None:
    model = RASL()
    hp = model.hparams
    assert (hp.window, hp.k, hp.temperature_init, hp.mask_ratio, hp.lr) == (150, 10, 3.1, 0.5, 1e-3)
    assert (hp.recon_weight, hp.kpoint_weight, hp.aux_weight, hp.scl_weight) == (1, 1, 1, 1)
    assert (hp.video_dim, hp.audio_dim, hp.scl_dim) == (768, 768, None)
    assert hp.audio_alignment == "interpolate" and len(model.scl_projections) == 0
    assert (hp.self_attention, hp.aux_task, hp.kpoint_contrast) == (True, True, True)
    assert (hp.modalities, hp.fusion, hp.conv_axis) == ("audio_visual", "scl", "feature")
    assert set(model.branches) == {"visual", "audio"} and model.predicts_windows is False
    assert isinstance(model.configure_optimizers(), torch.optim.RMSprop)
    assert len(model.branches["visual"].encoder.layers) == 3
    assert all(layer.stride == (2,) for layer in model.branches["visual"].decoder.layers)
    assert model.logit_scale().item() == pytest.approx(torch.tensor(3.1).exp().item())


def test_self_attention_is_residual() -> None:
    attention = SelfAttention(VIDEO_DIM)
    features = torch.randn(2, 5, VIDEO_DIM)
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    torch.nn.init.zeros_(attention.w_o.weight)
    assert torch.equal(attention(features, valid), features)  # rho-bar = rho + O W^O (eq. 2)
    torch.nn.init.normal_(attention.w_o.weight)
    changed = features.clone()
    changed[1, 3:] = 99.0  # padded keys do not reach valid steps
    assert torch.allclose(attention(features, valid)[1, :3], attention(changed, valid)[1, :3])


@pytest.mark.parametrize(
    ("conv_axis", "steps"),
    [("feature", WINDOW), ("time", 2)],  # 10 -> 5 -> 3 -> 2 over time
)
def test_branch_shapes(conv_axis: str, steps: int) -> None:
    channels = (4, 8, 6)
    branch = Branch(VIDEO_DIM, channels, 3, 3, 16, conv_axis, final_relu=False)
    features = torch.randn(3, WINDOW, VIDEO_DIM)
    out = branch.encode(features, torch.ones(3, WINDOW, dtype=torch.bool))
    width = 6 * 3 if conv_axis == "feature" else 6  # feature axis: 24 -> 12 -> 6 -> 3
    assert out.r.shape == out.z.shape == (3, steps, width) and out.s.shape == (3, steps)
    assert branch.decode(out.s, out.r, WINDOW).shape == features.shape  # eq. 5
    assert branch.step_scores(out.s, WINDOW).shape == (3, WINDOW)
    assert (out.r >= 0).all()  # encoder layers end in ReLU


def test_decoder_input_is_s_times_r() -> None:
    branch = Branch(VIDEO_DIM, (4, 8, 8), 3, 3, 16, "feature", final_relu=False)
    out = branch.encode(torch.randn(2, WINDOW, VIDEO_DIM), torch.ones(2, WINDOW, dtype=torch.bool))
    zero = branch.decode(torch.zeros_like(out.s), out.r, WINDOW)
    # with s = 0 every step decodes to the same vector (the decoder biases): r only enters as s*r
    assert torch.allclose(zero, zero[:1, :1].expand_as(zero))
    assert not torch.allclose(branch.decode(out.s, out.r, WINDOW), zero)


@pytest.mark.parametrize("length", [4, WINDOW, 2 * WINDOW + 3])
def test_window_steps_repeat_the_last_piece(length: int) -> None:
    windows = window_steps(length, WINDOW)
    assert len(windows) == -(-length // WINDOW)
    for index, steps in enumerate(windows):
        start, piece = index * WINDOW, min(WINDOW, length - index * WINDOW)
        assert steps.tolist() == [start + i % piece for i in range(WINDOW)]


@pytest.mark.parametrize("length", [4, WINDOW, 2 * WINDOW + 3])
def test_inference_windowing(length: int) -> None:
    """Scores are the real parts of each window's scores, concatenated then normalised."""
    model = make_model(score_norm="none").eval()
    batch = evaluation_batch([length, 2])  # padded batch: the first video is the longest
    scores = model.highlight_scores(batch)[0]
    assert scores.shape == (length,)
    video = batch["video"][0]
    expected = []
    for index, steps in enumerate(window_steps(length, WINDOW)):
        window_scores = model.score_windows({"visual": video[steps][None]})[0]
        expected.append(window_scores[: min(WINDOW, length - index * WINDOW)])
    assert torch.allclose(scores, torch.cat(expected), atol=1e-5)
    model.hparams.score_norm = "video"
    normalised = model.highlight_scores(batch)[0]
    assert torch.allclose(normalised, min_max(scores), atol=1e-5)
    assert normalised.min() == 0 and normalised.max() == pytest.approx(1.0)


def test_window_normalisation_scales_each_window() -> None:
    model = make_model(score_norm="window").eval()
    scores = model.highlight_scores(evaluation_batch([2 * WINDOW]))[0]
    for part in scores.split(WINDOW):
        assert part.min() == 0 and part.max() == pytest.approx(1.0)


def test_visual_only_inference_needs_no_audio() -> None:
    model = make_model().eval()
    without = model.predict_batch(evaluation_batch([13, 7]))
    with_audio = model.predict_batch(evaluation_batch([13, 7], audio=True))
    assert without == with_audio  # audio is ignored at inference
    assert [len(p["pred_saliency_scores"]) for p in without] == [13, 7]
    assert set(without[0]) == {"qid", "vid", "query", "pred_saliency_scores"}
    assert model.input_dims() == {"video": VIDEO_DIM}
    assert model.train().input_dims() == {"video": VIDEO_DIM, "audio": AUDIO_DIM}


def test_scores_map_to_evaluation_clips() -> None:
    steps = torch.arange(20.0)  # 5 fps steps of 4 clips of 1 s: 5 steps per clip
    assert scores_to_clips(steps, 4).tolist() == [2.0, 7.0, 12.0, 17.0]
    assert scores_to_clips(torch.tensor([1.0, 5.0]), 4).tolist() == [1.0, 1.0, 5.0, 5.0]
    assert scores_to_clips(steps, 20) is steps


ABLATIONS = {
    "paper": ({}, {"recon", "kpoint", "aux"}, {"visual", "audio"}, True),
    "k=0 (w/o k-point)": ({"k": 0}, {"recon", "aux"}, {"visual", "audio"}, True),
    "eta = mean top-k": ({"kpoint_contrast": False}, {"recon", "kpoint", "aux"}, None, True),
    "w/o SA": ({"self_attention": False}, {"recon", "kpoint", "aux"}, None, True),
    "w/o auxiliary": ({"aux_task": False}, {"recon", "kpoint"}, None, True),
    "w/o audio": ({"modalities": "visual"}, {"recon", "kpoint", "aux"}, {"visual"}, False),
    "w/o vision": ({"modalities": "audio"}, {"recon", "kpoint", "aux"}, {"audio"}, False),
    "summation": ({"fusion": "sum"}, {"recon", "kpoint", "aux"}, {"fused"}, False),
    "concatenation": ({"fusion": "concat"}, {"recon", "kpoint", "aux"}, {"fused"}, False),
    "time axis": ({"conv_axis": "time", "k": 1}, {"recon", "kpoint", "aux"}, None, True),
    "other readings": (
        {"decoder_input": "z", "aux_activations": "masked", "scl_negatives": "batch"},
        {"recon", "kpoint", "aux"},
        None,
        True,
    ),
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablation_switches_train_and_predict(name: str) -> None:
    overrides, terms, branches, scl = ABLATIONS[name]
    model = make_model(**overrides)
    if branches is not None:
        assert set(model.branches) == branches
    if overrides.get("self_attention") is False:
        assert len(model.attention) == 0
    batch = pretraining_batch()
    losses = model.pretraining_losses(batch)
    assert {key.split("_")[0] for key in losses} == terms | ({"scl"} if scl else set())
    loss = model.total_loss(losses)
    assert torch.isfinite(loss)
    loss.backward()
    trained = [p for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert len(trained) > 0
    needs_audio = overrides.get("modalities") == "audio" or "fusion" in overrides
    model.eval()
    predictions = model.predict_batch(evaluation_batch([13, 4], audio=needs_audio))
    assert [len(p["pred_saliency_scores"]) for p in predictions] == [13, 4]
    if needs_audio:
        with pytest.raises(ValueError, match=r"needs batch\['audio'\]"):
            model.predict_batch(evaluation_batch([13, 4]))


def test_loss_weights_follow_eq_11() -> None:
    model = make_model(recon_weight=2.0, scl_weight=0.0)
    losses = {name: torch.tensor(1.0) for name in ("recon_visual", "kpoint_visual", "scl")}
    assert model.total_loss(losses).item() == 3.0


def test_invalid_options_are_explained() -> None:
    with pytest.raises(ValueError, match="exceed the 10 activations"):
        make_model(k=6)
    with pytest.raises(ValueError, match="set scl_dim"):
        make_model(audio_alignment="projection")
    with pytest.raises(ValueError, match="audio_alignment is 'interpolate'"):
        make_model(audio_alignment="learned")
    with pytest.raises(ValueError, match="fuses both modalities"):
        make_model(fusion="sum", modalities="visual")
    video_only = {key: value for key, value in pretraining_batch().items() if key != "audio"}
    with pytest.raises(ValueError, match=r"modalities='visual'"):
        make_model().pretraining_losses(video_only)


def test_missing_mask_is_drawn_with_mask_ratio() -> None:
    model = make_model()
    batch = {key: value for key, value in pretraining_batch().items() if key != "mask"}
    hidden = model._hidden_steps(batch)
    assert hidden.sum(1).tolist() == [WINDOW // 2] * 3


def test_scores_pool_onto_clips_by_their_rows() -> None:
    scores = torch.arange(12.0)  # rows placed by time: clips of 4 rows, the last of 2, overlapping
    assert pool_clip_rows(scores, [[0, 4], [4, 8], [6, 8], [10, 12]]).tolist() == [
        1.5,
        5.5,
        6.5,
        10.5,
    ]


def test_align_audio_pools_time_and_interpolates_the_vector_length() -> None:
    steps = torch.arange(8.0)[None, :, None].expand(1, 8, 3)  # 8 audio steps of 3 values
    pooled = align_audio(steps, 4, 3)
    assert pooled[0, :, 0].tolist() == [0.5, 2.5, 4.5, 6.5]  # mean of each pair of steps
    ramp = torch.tensor([[[0.0, 2.0, 4.0]]])  # one step, d_a = 3 -> d_v = 6
    widened = align_audio(ramp, 1, 6)[0, 0]
    assert torch.allclose(widened, torch.tensor([0.0, 0.5, 1.5, 2.5, 3.5, 4.0]))  # linear
    assert align_audio(ramp, 1, 3) is ramp


def dense_audio_batch() -> dict:
    """Audio 4x denser than video and narrower (d_a = 12 < d_v = 24), as Mockingjay vs frames."""
    batch = pretraining_batch()
    batch["audio"] = torch.randn(3, 4 * WINDOW, AUDIO_DIM, generator=torch.Generator())
    return batch


def test_paper_audio_alignment_is_parameter_free_through_forward() -> None:
    model = make_model()
    same_width = make_model(audio_dim=VIDEO_DIM)
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in same_width.parameters())  # d_a adds no parameter
    assert model.attention["audio"].w_q.in_features == VIDEO_DIM
    assert model.branches["audio"].dim == VIDEO_DIM and len(model.scl_projections) == 0
    batch = dense_audio_batch()
    aligned = model._inputs(batch, model.modalities)["audio"]
    assert aligned.shape == (3, WINDOW, VIDEO_DIM)
    expected = align_audio(batch["audio"], WINDOW, VIDEO_DIM)
    assert torch.equal(aligned, expected)
    losses = model.pretraining_losses(batch)
    assert {"recon_audio", "aux_audio", "scl"} <= set(losses)
    model.total_loss(losses).backward()
    assert model.branches["audio"].encoder.layers[0].weight.grad.abs().sum() > 0
    assert model.temperature.grad is not None and model.temperature.grad != 0


def test_learned_projection_option_still_trains_and_predicts() -> None:
    model = make_model(audio_alignment="projection", scl_dim=16)
    assert model.attention["audio"].w_q.in_features == AUDIO_DIM
    assert model.branches["audio"].dim == AUDIO_DIM
    assert set(model.scl_projections) == {"visual", "audio"}
    losses = model.pretraining_losses(pretraining_batch())
    model.total_loss(losses).backward()
    assert model.scl_projections["audio"].weight.grad.abs().sum() > 0
    predictions = model.eval().predict_batch(evaluation_batch([13, 4]))
    assert [len(p["pred_saliency_scores"]) for p in predictions] == [13, 4]


def old_checkpoint(tmp_path, model: RASL) -> str:
    """A checkpoint as vhd wrote it before ``audio_alignment`` existed."""
    import lightning

    hparams = {key: value for key, value in model.hparams.items() if key != "audio_alignment"}
    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return str(path)


def test_checkpoint_from_before_audio_alignment(tmp_path) -> None:
    trained = make_model(audio_alignment="projection", scl_dim=16)
    path = old_checkpoint(tmp_path, trained)
    with pytest.raises(CheckpointMismatch, match="audio_alignment=projection"):
        RASL.load_from_checkpoint(path)
    loaded = RASL.load_from_checkpoint(path, audio_alignment="projection")
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    same_width = make_model(audio_dim=VIDEO_DIM)  # d_a = d_v: the same weights either way
    reloaded = RASL.load_from_checkpoint(old_checkpoint(tmp_path, same_width))
    assert reloaded.hparams.audio_alignment == "interpolate"
