"""The HPCL model on hand-made tensors: shapes, masks of padded batches, every ablation switch."""

from __future__ import annotations

import pytest
import torch

from vhd.models import HPCL
from vhd.models.hpcl import MultiHeadAttention

VIDEO_DIM, AUDIO_DIM = 12, 6
SMALL = {"d_model": 16, "d_k": 32, "d_v": 32, "d_ff": 32, "num_heads": 4, "head_hidden_dim": 16}


def make_model(**overrides: object) -> HPCL:
    torch.manual_seed(0)
    return HPCL(video_dim=VIDEO_DIM, audio_dim=AUDIO_DIM, **{**SMALL, **overrides})


def make_batch(lengths: list[int], seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    mask = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]
    labels = (torch.rand(len(lengths), longest, generator=generator) > 0.5).float() * mask
    labels[:, 0], labels[:, 1] = 0.0, 1.0  # both classes in every video
    shape = (len(lengths), longest)
    return {
        "video": torch.randn(*shape, VIDEO_DIM, generator=generator) * mask[..., None],
        "audio": torch.randn(*shape, AUDIO_DIM, generator=generator) * mask[..., None],
        "video_mask": mask,
        "labels": labels,
        "meta": [{"qid": f"v{i}", "vid": f"v{i}", "num_clips": n} for i, n in enumerate(lengths)],
    }


def test_paper_defaults() -> None:
    model = HPCL()
    hp = model.hparams
    assert (hp.d_model, hp.num_layers, hp.num_heads, hp.d_k, hp.d_v, hp.dropout) == (
        256,
        2,
        8,
        512,
        512,
        0.5,
    )
    assert (hp.ce_weight, hp.hpcl_weight, hp.rank_weight) == (1.0, 0.3, 0.1)
    assert (hp.hard_pair_region, hp.rank_margin, hp.lr) == (3, 0.7, 1e-4)
    assert (hp.architecture, hp.global_decoder, hp.global_init) == ("co_av", True, "mean")
    assert len(model.intra_encoding["visual"].layers) == 2
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)
    assert model.predicts_windows is False


def test_output_shapes_of_the_full_model() -> None:
    model = make_model().eval()
    output = model(make_batch([9, 5, 7]))
    assert set(output.logits) == {"co", "visual", "audio"}
    assert all(logits.shape == (3, 9) for logits in output.logits.values())
    assert output.embeddings.shape == (3, 9, 2 * SMALL["d_model"])  # eq. 7: concat of two streams
    scores = model.scores(output)
    assert scores.shape == (3, 9) and ((scores > 0) & (scores < 1)).all()


@pytest.mark.parametrize("architecture", ["co_av", "cr_av", "av", "v_only", "a_only"])
def test_padding_changes_nothing_for_the_valid_segments(architecture: str) -> None:
    """A video's scores, embeddings and predictions are the same alone and in a padded batch."""
    model = make_model(architecture=architecture).eval()
    batch = make_batch([6, 10, 3])
    padded = model(batch)
    for row, length in enumerate([6, 10, 3]):
        alone = {
            key: value[row : row + 1, :length] if key != "meta" else [value[row]]
            for key, value in batch.items()
        }
        single = model(alone)
        for name, logits in single.logits.items():
            torch.testing.assert_close(padded.logits[name][row, :length], logits[0])
        torch.testing.assert_close(padded.embeddings[row, :length], single.embeddings[0])
    predictions = model.predict_batch(batch)
    assert [len(p["pred_saliency_scores"]) for p in predictions] == [6, 10, 3]
    assert [p["vid"] for p in predictions] == ["v0", "v1", "v2"]
    assert all("pred_relevant_windows" not in p for p in predictions)


def test_losses_ignore_padded_segments() -> None:
    model = make_model().eval()
    batch = make_batch([8, 4])
    reference = model.losses(model(batch), batch["labels"], batch["video_mask"])
    garbage = dict(batch)
    garbage["video"], garbage["audio"] = batch["video"].clone(), batch["audio"].clone()
    garbage["video"][1, 4:] = 50.0
    garbage["audio"][1, 4:] = -50.0
    labels = batch["labels"].clone()
    labels[1, 4:] = 1 - labels[1, 4:]
    changed = model.losses(model(garbage), labels, batch["video_mask"])
    for name, value in reference.items():
        torch.testing.assert_close(changed[name], value)


ABLATIONS = [
    {"architecture": "co_av"},
    {"architecture": "cr_av"},
    {"architecture": "av"},
    {"architecture": "v_only"},
    {"architecture": "a_only"},
    {"hpcl_weight": 0.0, "rank_weight": 0.0},  # CE only
    {"rank_weight": 0.0},  # CE + HPCL
    {"global_decoder": False},
    {"global_init": "random"},
    {"attention_residual": "input"},
    {"attention_scale": "d_k"},
    {"position_encoding": "sinusoidal"},
    {"hard_pairs_mixed_only": False, "normalize_embeddings": False},
]


@pytest.mark.parametrize(
    "switches", ABLATIONS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items())
)
def test_each_ablation_switch_builds_trains_and_predicts(switches: dict) -> None:
    model = make_model(**switches)
    batch = make_batch([10, 7])
    parts = model.losses(model(batch), batch["labels"], batch["video_mask"])
    expected_parts = {"ce", "loss"}
    expected_parts |= {"hpcl"} if model.hparams.hpcl_weight else set()
    expected_parts |= {"rank"} if model.hparams.rank_weight else set()
    assert set(parts) == expected_parts
    assert torch.isfinite(parts["loss"])
    parts["loss"].backward()
    trained = [p for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert len(trained) > 0.7 * len(list(model.parameters()))
    predictions = model.eval().predict_batch(batch)
    assert [len(p["pred_saliency_scores"]) for p in predictions] == [10, 7]


def test_architecture_variants_use_the_modalities_they_name() -> None:
    batch = make_batch([8, 8])
    variants = {
        "co_av": ({"video": VIDEO_DIM, "audio": AUDIO_DIM}, {"co", "visual", "audio"}, 32),
        "cr_av": ({"video": VIDEO_DIM, "audio": AUDIO_DIM}, {"co", "visual", "audio"}, 32),
        "av": ({"video": VIDEO_DIM, "audio": AUDIO_DIM}, {"fused"}, 16),
        "v_only": ({"video": VIDEO_DIM}, {"visual"}, 16),
        "a_only": ({"audio": AUDIO_DIM}, {"audio"}, 16),
    }
    for architecture, (dims, heads, width) in variants.items():
        model = make_model(architecture=architecture).eval()
        assert model.input_dims() == dims
        output = model(batch)
        assert set(output.logits) == heads and output.embeddings.shape[-1] == width
    # V only must not look at audio, A only not at video
    changed = dict(batch, audio=torch.randn_like(batch["audio"]))
    v_only = make_model(architecture="v_only").eval()
    torch.testing.assert_close(v_only(changed).logits["visual"], v_only(batch).logits["visual"])
    changed = dict(batch, video=torch.randn_like(batch["video"]))
    a_only = make_model(architecture="a_only").eval()
    torch.testing.assert_close(a_only(changed).logits["audio"], a_only(batch).logits["audio"])


def test_co_occurrence_attends_over_both_modalities_and_cross_attention_over_the_other() -> None:
    """Eq. 4-5: visual queries see [F^v; F^a]; CR-AV's visual queries see F^a only."""
    for architecture, memory_width in (("co_av", 16), ("cr_av", 8)):
        model = make_model(architecture=architecture).eval()
        seen: list[int] = []

        def record_memory_length(_module, args, _output, seen=seen) -> None:
            seen.append(args[1].shape[1])

        attention = model.co_occurrence.visual_layers[0].cross_attention
        handle = attention.register_forward_hook(record_memory_length)
        model(make_batch([8, 5]))
        handle.remove()
        assert seen == [memory_width]


def test_global_decoder_adds_one_context_vector_to_every_segment() -> None:
    model = make_model().eval()
    batch = make_batch([7])
    mask = batch["video_mask"]
    encoded = model.intra_encoding["visual"](model.projection["visual"](batch["video"]), mask)
    refined = model.global_context["visual"](encoded, mask)
    context = refined - encoded  # G, the same for every segment (F-hat = F_n + G)
    torch.testing.assert_close(context, context[:, :1].expand_as(context))
    assert model.global_context["visual"].g_init.abs().sum() == 0  # "mean" starts at the mean
    assert make_model(global_init="random").global_context["visual"].g_init.abs().sum() > 0
    assert len(make_model(global_decoder=False).global_context) == 0


def test_score_is_the_weighted_mean_of_head_probabilities() -> None:
    model = make_model(co_score_weight=2.0, visual_score_weight=1.0, audio_score_weight=0.0).eval()
    output = model(make_batch([6]))
    expected = (2 * output.logits["co"].sigmoid() + output.logits["visual"].sigmoid()) / 3
    torch.testing.assert_close(model.scores(output), expected)


def test_bf16_autocast_gives_finite_losses_and_gradients() -> None:
    model = make_model()
    batch = make_batch([9, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        parts = model.losses(model(batch), batch["labels"], batch["video_mask"])
    parts["loss"].backward()
    assert torch.isfinite(parts["loss"])
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_missing_inputs_fail_with_the_fix() -> None:
    batch = make_batch([5])
    with pytest.raises(ValueError, match="needs audio features"):
        make_model()({key: value for key, value in batch.items() if key != "audio"})
    without_audio = {key: value for key, value in batch.items() if key != "audio"}
    make_model(architecture="v_only")(without_audio)
    with pytest.raises(ValueError, match="labels"):
        make_model().training_step({key: v for key, v in batch.items() if key != "labels"}, 0)


@pytest.mark.parametrize(("scale", "width"), [("head", 32 // 4), ("d_k", 32)])
def test_attention_scale_is_per_head_or_the_full_query_width(scale: str, width: int) -> None:
    """Each head's softmax divides by sqrt(d_k / num_heads) ("head", [53]) or sqrt(d_k) (eq. 2)."""
    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 32, 32, num_heads=4, scale=scale)
    features, mask = torch.randn(2, 6, 16), torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    attended, values = attention(features, features, mask)
    heads = attention._split
    queries, keys = heads(attention.w_q(features)), heads(attention.w_k(features))
    scores = (queries @ keys.transpose(-1, -2) / width**0.5).masked_fill(
        ~mask[:, None, None, :], float("-inf")
    )
    expected = (scores.softmax(-1) @ heads(values)).transpose(1, 2).reshape(2, 6, 32)
    torch.testing.assert_close(attended, expected)
