"""The VideoLights network: release sizes, parity numbers, quirks and post-processing."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vhd.losses.spans import span_cxw_to_xx
from vhd.losses.videolights import VideoLightsCriterion
from vhd.models import VideoLights
from vhd.models.layers.attention import padded_pair_mask
from vhd.models.layers.decoder import AnchorDecoder, distinct_rows
from vhd.models.layers.position import span_sine_embedding, video_sine_positions
from vhd.models.videolights import (
    FRA,
    LOG_TINY,
    STOP_SCORE_WEIGHTS,
    BiCMFLayer,
    VideoLightsNet,
    convert_official_state_dict,
    load_checkpoint_weights,
    postprocess_windows,
    postprocess_windows_batch,
    stop_score,
)

# A small network the release can build too (its decoder needs d = 256); used with the weights
# of ``deterministic`` for the numbers recorded from the release (reference commit 76308bb).
SMALL = dict(
    video_dim=10, text_dim=6, hidden_dim=256, num_heads=8, ffn_dim=64, num_bicmf_layers=1,
    num_encoder_layers=1, num_decoder_layers=2, num_queries=4, contrastive_dim=8,
)  # fmt: skip


TINY = dict(
    video_dim=10, text_dim=6, hidden_dim=32, num_heads=4, ffn_dim=32, num_encoder_layers=1,
    num_decoder_layers=2, num_queries=4, contrastive_dim=8,
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def deterministic(model: torch.nn.Module) -> None:
    """Weights that depend only on parameter names and shapes, not on construction order."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.dim() > 1:
                parameter.copy_(noise / parameter[0].numel() ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                parameter.copy_(1 + 0.1 * noise)
            else:
                parameter.copy_(0.1 * noise)


def small_batch() -> dict:
    """Three pairs of unequal video (12, 9, 7) and text (5, 3, 4) lengths with targets."""
    generator = torch.Generator().manual_seed(1)
    video, text = (
        torch.randn(3, 12, 10, generator=generator),
        torch.randn(3, 5, 6, generator=generator),
    )
    video_mask = torch.zeros(3, 12, dtype=torch.bool)
    text_mask = torch.zeros(3, 5, dtype=torch.bool)
    for row, (clips, tokens) in enumerate([(12, 5), (9, 3), (7, 4)]):
        video_mask[row, :clips] = True
        text_mask[row, :tokens] = True
    saliency = torch.zeros(3, 12)
    saliency[0, 2:6] = torch.tensor([3.0, 7, 12, 5])
    saliency[1, 4:8] = torch.tensor([2.0, 11, 9, 4])
    saliency[2, 0:3] = torch.tensor([12.0, 6, 1])
    return {
        "video": video * video_mask[..., None],
        "video_mask": video_mask,
        "query": text * text_mask[..., None],
        "query_mask": text_mask,
        "saliency": saliency,
        "windows": [
            torch.tensor([[0.25, 0.33]]),
            torch.tensor([[0.5, 0.33], [0.1, 0.1]]),
            torch.tensor([[0.125, 0.25]]),
        ],
        "saliency_pos": torch.tensor([[4, 3], [5, 6], [0, 1]]),
        "saliency_neg": torch.tensor([[2, 9], [7, 1], [2, 5]]),
    }


def run_small(config: dict = SMALL, **options) -> tuple:
    net = VideoLightsNet(**config, **options)
    deterministic(net)
    net.eval()
    batch = small_batch()
    with torch.no_grad():
        output = net(batch["video"], batch["video_mask"], batch["query"], batch["query_mask"])
    return output, batch


# -- sizes -----------------------------------------------------------------------------------------
def test_parameter_counts_match_the_release() -> None:
    assert count(VideoLights()) == 10_796_263  # QVHighlights / Charades-STA scripts
    assert count(VideoLights(video_dim=2050, text_dim=512)) == 10_201_831  # TVSum script
    config_defaults = VideoLightsNet(
        video_dim=2818, num_bicmf_layers=2, num_encoder_layers=2, num_decoder_layers=2,
        use_mr_to_hd=False, use_contrastive_align=False,
    )  # fmt: skip
    assert count(config_defaults) == 9_496_358  # the release's config.py defaults


def test_output_shapes() -> None:
    net = VideoLightsNet(video_dim=20, text_dim=12, hidden_dim=32, ffn_dim=32)
    video_mask = torch.ones(4, 75, dtype=torch.bool)
    output = net(torch.randn(4, 75, 20), video_mask, torch.randn(4, 20, 12), torch.ones(4, 20) > 0)
    assert output.logits.shape == output.spans.shape == (3, 4, 10, 2)
    for scores in (output.saliency, output.saliency_negative, output.saliency_mr):
        assert scores.shape == (4, 75)
    assert output.proj_queries.shape == (3, 4, 10, 64)
    assert output.proj_text.shape == (4, 20, 64)
    assert output.proj_video.shape == (4, 75, 64)


def test_parameters_without_gradient_are_the_releases() -> None:
    """Only the release's dead weights get no gradient (reference 2.13). The MR-to-HD read-out
    bias shifts every score equally and the loss shifts scores by their minimum, so its
    gradient is zero up to rounding."""
    torch.manual_seed(0)
    net = VideoLightsNet(**TINY)
    batch = small_batch()
    output = net(batch["video"], batch["video_mask"], batch["query"], batch["query_mask"])
    VideoLightsCriterion()(output, batch, epoch=0)[0].backward()
    silent = {
        name
        for name, parameter in net.named_parameters()
        if parameter.grad is None or not parameter.grad.any()
    }
    assert net.mr_to_hd.proj.bias.grad.abs().max() < 1e-6
    silent.discard("mr_to_hd.proj.bias")
    assert silent == {
        "bicmf.0.norm2.weight", "bicmf.0.norm2.bias",
        "text_positions.embedding.weight", "text_positions.norm.weight",
        "text_positions.norm.bias", "contrastive.video.weight", "contrastive.video.bias",
        "decoder.layers.0.sa_qcontent_proj.weight", "decoder.layers.0.sa_kcontent_proj.weight",
        "decoder.layers.0.sa_v_proj.weight",
    }  # fmt: skip


# -- parity with the release -----------------------------------------------------------------------
def test_outputs_and_losses_equal_the_releases() -> None:
    """Numbers of the release's model and criterion with the same weights and inputs (unequal
    lengths, so the tiled Bi-CMF mask matters)."""
    output, batch = run_small()
    expected_saliency = torch.tensor(
        [
            [-0.673388, -0.895411, -0.777305, 0.379558],
            [0.264066, 0.577635, 0.469438, 0.769871],
            [-0.825689, -0.818726, -0.590735, -0.564867],
        ]
    )
    assert torch.allclose(output.saliency[:, :4], expected_saliency, atol=1e-5)
    assert torch.allclose(
        output.saliency_negative.sum(1), torch.tensor([4.413834, -11.2672, -1.109595]), atol=1e-4
    )
    assert torch.allclose(
        output.saliency_mr.sum(1), torch.tensor([25.758255, 1.569, 6.945549]), atol=1e-4
    )
    expected_logits = [[-0.247728, 0.228618], [-0.183998, 0.700446], [-0.70812, -0.539617]]
    assert torch.allclose(output.logits[-1][:, 0], torch.tensor(expected_logits), atol=1e-5)
    expected_spans = [[0.850842, 0.12682], [0.749488, 0.185946], [0.820183, 0.107216]]
    assert torch.allclose(output.spans[-1][:, 0], torch.tensor(expected_spans), atol=1e-5)
    _, terms = VideoLightsCriterion()(output, batch, epoch=2)
    expected_terms = {
        "loss_span": 2.02732, "loss_giou": 1.05925, "loss_label": 1.52699,
        "loss_saliency": 15.00326, "loss_contrastive_align": 0.67887, "loss_span_0": 2.5484,
        "loss_giou_0": 0.88413, "loss_label_0": 1.03166, "loss_contrastive_align_0": 0.28573,
    }  # fmt: skip
    for name, value in expected_terms.items():
        assert terms[name].item() == pytest.approx(value, abs=2e-4), name


RELEASE_NAMES = {  # release parameter -> ours (names read off the release's QVHighlights model)
    "global_rep_token": "global_token",
    "transformer.t2v_encoder.layers.0.cross_attn_1.in_proj_weight": (
        "bicmf.0.video_to_text.in_proj_weight"
    ),
    "transformer.t2v_encoder.layers.0.cross_attn_3.out_proj.bias": "bicmf.0.fusion.out_proj.bias",
    "transformer.t2v_encoder.layers.0.activation.weight": "bicmf.0.activation.weight",
    "transformer.encoder.layers.0.self_attn.in_proj_bias": "encoder.0.self_attn.in_proj_bias",
    "transformer.decoder.layers.1.linear2.bias": "decoder.layers.1.linear2.bias",
    "transformer.decoder.bbox_embed.layers.2.weight": "decoder.span_refine.layers.2.weight",
    "transformer.decoder.ref_anchor_head.layers.1.bias": "decoder.ref_anchor_head.layers.1.bias",
    "txt_position_embed.LayerNorm.weight": "text_positions.norm.weight",
    "input_vid_proj.0.net.1.conv1d.weight": "video_projection.0.proj.weight",
    "input_txt_proj.1.LayerNorm.bias": "text_projection.1.norm.bias",
    "feature_refinement.cor_q_w": "fra.c_q",
    "feature_refinement.word_to_sentence_pool.weight": "fra.w_p",
    "feature_refinement.mixer.conv1d.weight": "fra.mixer.weight",
    "contrastive_align_projection_txt.bias": "contrastive.text.bias",
    "saliency_proj2.weight": "saliency_global_proj.weight",
    "gru_extractor.gru.weight_hh_l0": "mr_to_hd.gru.weight_hh_l0",
    "saliency_proj_mr.bias": "mr_to_hd.proj.bias",
    "query_embed.weight": "query_anchors.weight",
}  # fmt: skip


def test_release_names_convert() -> None:
    converted = convert_official_state_dict({name: torch.zeros(1, 1) for name in RELEASE_NAMES})
    assert list(converted) == list(RELEASE_NAMES.values())
    assert converted["fra.c_q"].shape == (1,)  # the release's (1, 1) vectors become 1-D


def test_checkpoints_load_weights_only(tmp_path: Path) -> None:
    """vhd and release checkpoints (the latter with its option namespace) give the weights."""
    net = VideoLightsNet(**SMALL)
    deterministic(net)
    ours_to_release = {ours: theirs for theirs, ours in RELEASE_NAMES.items()}
    release = {ours_to_release.get(name, name): value for name, value in net.state_dict().items()}
    with pytest.raises(KeyError, match="unexpected parameter"):
        convert_official_state_dict(release)  # our names are not release names
    path = tmp_path / "model_best.ckpt"
    subset = {name: value for name, value in release.items() if name in RELEASE_NAMES}
    options = argparse.Namespace(dset_name="hl", lr=1e-4)
    torch.save({"model": subset, "optimizer": {}, "epoch": 3, "opt": options}, path)
    weights = load_checkpoint_weights(path)
    for name in RELEASE_NAMES.values():
        assert torch.equal(weights[name].reshape(-1), net.state_dict()[name].reshape(-1)), name
    lightning = tmp_path / "vhd.ckpt"
    state = {f"net.{name}": value for name, value in net.state_dict().items()}
    torch.save({"state_dict": {**state, "criterion.x": torch.zeros(1)}}, lightning)
    loaded = VideoLightsNet(**SMALL)
    loaded.load_state_dict(load_checkpoint_weights(lightning))
    assert all(
        torch.equal(a, b) for a, b in zip(net.parameters(), loaded.parameters(), strict=True)
    )


def test_a_bad_pretrained_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    """Not a checkpoint, or another program's dict: one message naming the flag or the keys."""
    from vhd.errors import UserError

    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(b"\x07" * 100)
    with pytest.raises(UserError, match=r"noise\.ckpt cannot be read as a checkpoint"):
        load_checkpoint_weights(noise)
    with pytest.raises(UserError, match=r"pretrained_checkpoint .*missing\.ckpt: no such file"):
        load_checkpoint_weights(tmp_path / "missing.ckpt")
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(UserError, match=r"neither a vhd checkpoint .* found keys \['weights'\]"):
        load_checkpoint_weights(other)


# -- quirks and building blocks --------------------------------------------------------------------
def test_bicmf_release_mask_depends_on_the_batch() -> None:
    torch.manual_seed(0)
    release = BiCMFLayer(16, 4, 32, dropout=0.0, mask_mode="release").eval()
    per_sample = BiCMFLayer(16, 4, 32, dropout=0.0, mask_mode="per-sample").eval()
    per_sample.load_state_dict(release.state_dict())
    video, text = torch.randn(3, 6, 16), torch.randn(3, 4, 16)
    video_pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] * 3 + [True] * 3])
    text_pad = torch.tensor([[False] * 4, [False] * 2 + [True] * 2, [False] * 3 + [True]])
    args = (video, text, torch.zeros_like(video), torch.zeros_like(text))
    with torch.no_grad():
        # one sample: the tiled mask is that sample's own, which key padding already implies
        single = [layer(*(x[1:2] for x in args), video_pad[1:2], text_pad[1:2])
                  for layer in (release, per_sample)]  # fmt: skip
        assert torch.allclose(single[0], single[1], atol=1e-6)
        batched = [layer(*args, video_pad, text_pad) for layer in (release, per_sample)]
    valid = ~video_pad
    assert not torch.allclose(batched[0][valid], batched[1][valid], atol=1e-3)
    mask = padded_pair_mask(video_pad, text_pad, num_heads=4, mode="release")
    assert mask.shape == (12, 6, 4)
    assert torch.equal(mask[1], video_pad[1][:, None] & text_pad[1][None])  # index 1 = sample 1
    assert padded_pair_mask(video_pad, text_pad, 4, "per-sample") is None


def test_per_sample_mask_changes_the_release_numbers() -> None:
    release, _ = run_small(TINY)
    per_sample, _ = run_small(TINY, bicmf_mask="per-sample")
    assert not torch.allclose(release.saliency, per_sample.saliency, atol=1e-3)


def test_decoder_projects_each_distinct_position_row_once() -> None:
    """Videos of equal length share their positions: the decoder projects them once and gives
    the outputs of projecting them per video."""
    torch.manual_seed(0)
    decoder = AnchorDecoder(32, 4, 64, 0.0, 2).eval()
    anchors, memory = torch.randn(3, 2), torch.randn(5, 12, 32)
    for shorter in (False, True):  # all of full length (one row), or one shorter (two rows)
        mask = torch.ones(5, 12, dtype=torch.bool)
        mask[2, 9:] = not shorter
        positions = video_sine_positions(mask, 32)
        rows, index = distinct_rows(positions)
        assert len(rows) == 1 + shorter and torch.equal(rows[index], positions)
        shared = decoder(anchors, memory, ~mask, positions)
        unshared = positions.clone().requires_grad_()  # distinct_rows leaves it as it is
        per_video = decoder(anchors, memory, ~mask, unshared)
        for ours, theirs in zip(shared, per_video, strict=True):
            assert torch.allclose(ours, theirs, atol=1e-6)


def test_decoder_shares_the_first_layer_queries_only_without_dropout() -> None:
    """All samples start from the same anchors: the first layer's query side computed once gives
    the outputs of computing it per sample; with dropout active each sample keeps its own."""
    torch.manual_seed(0)
    decoder = AnchorDecoder(32, 4, 64, 0.1, 3).eval()
    anchors, memory = torch.randn(4, 2), torch.randn(3, 12, 32)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False
    positions = video_sine_positions(mask, 32)
    shared = decoder(anchors, memory, ~mask, positions)  # evaluation: shared
    per_sample = decoder(anchors, memory, ~mask, positions, share_first_queries=False)
    for ours, theirs in zip(shared, per_sample, strict=True):
        assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-6)
    decoder.train()
    rows = []
    layer = decoder.layers[0]
    handle = layer.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
    decoder(anchors, memory, ~mask, positions)
    handle.remove()
    assert rows == [3]  # training with dropout: a target row per sample


def test_saliency_is_the_dot_product_of_projected_clips_and_global_token() -> None:
    torch.manual_seed(0)
    net = VideoLightsNet(**TINY)
    memory, global_token = torch.randn(3, 7, 32), torch.randn(3, 32)
    clips = net.saliency_clip_proj(memory)
    query = net.saliency_global_proj(global_token)[:, None]
    expected = (clips * query).sum(dim=-1) / 32**0.5
    assert torch.allclose(net.saliency(memory, global_token), expected, atol=1e-5)


def test_video_sine_positions() -> None:
    positions = video_sine_positions(torch.tensor([[True, True, True, False]]), dim=256)
    expected = torch.tensor([[0.8660, -0.5], [-0.8660, -0.5], [0.0, 1.0], [0.0, 1.0]])
    assert torch.allclose(positions[0, :, :2], expected, atol=1e-4)
    assert torch.equal(positions[0, 3], positions[0, 2])


def test_span_sine_embedding_layout() -> None:
    embedding = span_sine_embedding(torch.tensor([[0.0, 0.25]]), dim_per_coordinate=128)
    assert embedding.shape == (1, 256)
    assert embedding[0, :2].tolist() == [0.0, 1.0]  # center 0: sin 0, cos 0
    assert embedding[0, 128:130].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)  # 2 pi x 0.25


def test_fra_log_mask_value() -> None:
    assert torch.log(torch.tensor(0.0) + 1e-45).item() == pytest.approx(LOG_TINY, abs=1e-4)


def test_fra_mixes_by_parts_without_dropout() -> None:
    """Evaluation applies the mixer part by part (rank-one parts once per video); it is the
    kernel-1 convolution over the concatenated features, padded clips included."""
    torch.manual_seed(0)
    fra = FRA(32, dropout=0.1)
    video, text = torch.randn(3, 11, 32), torch.randn(3, 5, 32)
    video_mask = torch.ones(3, 11, dtype=torch.bool)
    video_mask[1, 7:] = False
    text_mask = torch.ones(3, 5, dtype=torch.bool)
    text_mask[2, 2:] = False
    fra.eval()
    by_parts = fra(video, text, video_mask, text_mask)
    fra.train()
    fra.dropout.p = 1e-9  # the concatenating path, dropping nothing
    concatenated = fra(video, text, video_mask, text_mask)
    assert torch.allclose(by_parts, concatenated, rtol=1e-5, atol=1e-4)


# -- predictions and model selection ---------------------------------------------------------------
def test_postprocessing_vectors() -> None:
    seconds = torch.tensor([[67.5, 82.5], [-3.0, 151.0], [67.0, 69.0]])
    spans = torch.stack([seconds.mean(1), seconds[:, 1] - seconds[:, 0]], dim=1) / 150
    rows = postprocess_windows(spans, torch.tensor([0.2, 0.9, 0.55556]), 150.0, 2.0)
    assert rows == [[0.0, 150.0, 0.9], [68.0, 68.0, 0.5556], [68.0, 82.0, 0.2]]
    short = postprocess_windows(torch.tensor([[0.9, 0.4]]), torch.tensor([0.5]), 127.0, 2.0)
    assert short[0][1] == 127.0  # clipped to the video


def one_query_windows(
    spans: torch.Tensor, scores: torch.Tensor, duration: float, clip_len: float
) -> list[list[float]]:
    """The release's post-processing, one query at a time, in Python lists (the reference)."""
    seconds = span_cxw_to_xx(spans.float()) * duration
    rows = torch.cat([seconds, scores.float()[:, None]], dim=1).tolist()
    rows.sort(key=lambda row: row[2], reverse=True)
    rows = [[float(f"{value:.4f}") for value in row] for row in rows]
    bounds = torch.tensor([row[:2] for row in rows]).clamp(0, duration)
    bounds = (torch.round(bounds / clip_len) * clip_len).clamp(0, duration)
    return [
        [*bound, float(f"{row[2]:.4f}")] for bound, row in zip(bounds.tolist(), rows, strict=True)
    ]


@pytest.mark.parametrize("clip_lens", [[2.0] * 6, [2.0, 1.0, 0.7, 2.0, 3.0, 1.5]])
def test_batched_postprocessing_gives_the_per_query_numbers(clip_lens: list[float]) -> None:
    torch.manual_seed(0)
    spans = torch.rand(6, 10, 2) * torch.tensor([1.2, 0.8]) - torch.tensor([0.1, 0.0])
    scores = torch.rand(6, 10)
    scores[0, 3:6] = scores[0, 2]  # ties keep their order
    durations = [150.0, 127.0, 33.3, 80.1, 150.0, 7.77]
    batched = postprocess_windows_batch(spans, scores, durations, clip_lens)
    for row, duration in enumerate(durations):
        expected = one_query_windows(spans[row], scores[row], duration, clip_lens[row])
        assert batched[row] == expected


def test_stop_score() -> None:
    assert sum(STOP_SCORE_WEIGHTS["qvhighlights"].values()) == pytest.approx(3.75)
    assert sum(STOP_SCORE_WEIGHTS["grounding"].values()) == pytest.approx(2.0)
    for protocol, weights in (("qvhighlights", "qvhighlights"), ("charades", "grounding")):
        results = {name: 42.0 for name in STOP_SCORE_WEIGHTS[weights]}
        assert stop_score(results, protocol) == pytest.approx(42.0)
    assert stop_score({"mAP": 3.0}, "tvsum") is None
    # a length bucket without moments is NaN in vhd's metrics and 0 in the release's evaluator
    weights = STOP_SCORE_WEIGHTS["qvhighlights"]
    empty = next(name for name in weights if "long" in name)
    results = {name: 42.0 for name in weights} | {empty: float("nan")}
    expected = 42.0 * (sum(weights.values()) - weights[empty]) / sum(weights.values())
    assert stop_score(results, "qvhighlights") == pytest.approx(expected)


def test_bf16_autocast_forward_and_backward() -> None:
    net = VideoLightsNet(**TINY)
    batch = small_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = net(batch["video"], batch["video_mask"], batch["query"], batch["query_mask"])
        loss, _ = VideoLightsCriterion()(output, batch, epoch=0)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_adamw_is_fused_on_cpu_in_full_precision_only() -> None:
    """Lightning refuses gradient clipping (0.1 in every config) with a fused optimizer under
    mixed precision: the fused kernel is used only where it is allowed."""
    model = VideoLights(**TINY)
    assert model.configure_optimizers()["optimizer"].defaults["fused"] is True
    model._trainer = SimpleNamespace(precision="bf16-mixed")
    assert not model.configure_optimizers()["optimizer"].defaults["fused"]


def test_training_fits_a_batch() -> None:
    """A few AdamW steps on one batch lower every loss family and rank the labelled clips."""
    torch.manual_seed(0)
    model = VideoLights(**{**TINY, "input_dropout": 0.0, "dropout": 0.0, "lr": 3e-3})
    batch = small_batch()
    optimizer = model.configure_optimizers()["optimizer"]
    first = None
    for _ in range(40):
        loss, terms = model.criterion(model(batch), batch, epoch=0)
        first = first or {name: value.item() for name, value in terms.items()}
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name in ("loss_span", "loss_giou", "loss_saliency"):
        assert terms[name].item() < 0.7 * first[name], name
    model.eval()
    with torch.no_grad():
        saliency = model(batch, for_loss=False).saliency
    for row in range(3):
        labelled = batch["saliency"][row] > 0
        valid = batch["video_mask"][row]
        assert saliency[row][labelled].mean() > saliency[row][valid & ~labelled].mean()
