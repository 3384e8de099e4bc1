"""VideoLights vs the official release: the same weights and inputs through both, at the sizes of
the release's QVHighlights, Charades-STA or TVSum script, comparing every output, every weighted
loss term and every gradient (dropout off; ``tests/test_videolights_golden.py`` covers dropout).
Needs a checkout of github.com/dpaul06/VideoLights (its ``video_lights`` package is imported,
nothing is copied). Prints one JSON object of maximum absolute differences and exits with 1 when
any exceeds ``TOLERANCES`` (relative to the release's value, floored at 1), else 0.

    .venv/bin/python benchmarks/videolights_parity.py --release ../VideoLights \
        [--dataset qvhighlights|charades|tvsum] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from vhd.losses.videolights import VideoLightsCriterion
from vhd.models.videolights import VideoLightsNet, convert_official_state_dict

RELEASE_QV = dict(  # the argument namespace of video_lights/scripts/qvhl/train.sh
    dset_name="hl", device="cpu", hidden_dim=256, dropout=0.1, nheads=8, dim_feedforward=1024,
    bicmf_layers=1, enc_layers=3, dec_layers=3, pre_norm=False, position_embedding="sine",
    max_q_l=32, input_dropout=0.5, t_feat_dim=1280, v_feat_dim=3586, a_feat_dim=0,
    num_queries=10, aux_loss=True, mr_to_hd_loss=True, contrastive_align_loss=True,
    contrastive_hdim=64, span_loss_type="l1", use_txt_pos=False, n_input_proj=2, clip_length=2,
    set_cost_span=10, set_cost_giou=1, set_cost_class=4, span_loss_coef=10, giou_loss_coef=1,
    label_loss_coef=4, lw_saliency=1.0, contrastive_align_loss_coef=0.2, eos_coef=0.1,
    temperature=0.07, max_v_l=75, saliency_margin=0.2, n_epoch=200, hard_pos_neg_loss=True,
    hard_pos_neg_loss_coef=10.0, mr_to_hd_loss_coef=1.0, cos_sim_loss_coef=1.0,
)  # fmt: skip


DATASETS = {  # the options of the release's charades_sta and tvsum train.sh that differ
    "qvhighlights": {},
    "charades": dict(dset_name="charadesSTA", clip_length=1, contrastive_align_loss_coef=0.3),
    "tvsum": dict(
        dset_name="tvsum", v_feat_dim=2050, t_feat_dim=512, max_v_l=1000,
        contrastive_align_loss_coef=0.8, hard_pos_neg_loss_coef=1.0,
    ),
}  # fmt: skip
# Largest difference allowed, relative to max(1, the release's largest magnitude) (gradients: the
# norm of the difference relative to max(1, the release's gradient norm), per parameter). Float32
# noise between two orders of summation is about 1e-6 of that; a wrong term is of order one.
# Gradients get more room: an FFN pre-activation within float noise of 0 can take the PReLU
# slope 1 on one side and 0.25 on the other (at QVHighlights sizes one element of 4 x 75 x 1024
# does, in the negative pass: 1.5e-3 of the input projection's gradient norm).
TOLERANCES = {"outputs": 1e-4, "loss_terms": 1e-4, "loss_total": 1e-4, "gradients": 1e-2}


def inputs(options: dict, batch: int, clips: int, tokens: int, generator: torch.Generator) -> dict:
    """Unequal video and text lengths (so the Bi-CMF mask quirk matters) and QVHL-like targets."""
    video_mask = torch.ones(batch, clips, dtype=torch.bool)
    text_mask = torch.ones(batch, tokens, dtype=torch.bool)
    for row in range(1, batch):
        video_mask[row, clips - 7 * row :] = False
        text_mask[row, tokens - 3 * row :] = False
    saliency = torch.zeros(batch, clips)
    for row in range(batch):
        valid = int(video_mask[row].sum())
        relevant = torch.randperm(valid, generator=generator)[: valid // 3]
        saliency[row, relevant] = torch.randint(
            1, 13, (len(relevant),), generator=generator
        ).float()
    positive = saliency.argmax(1, keepdim=True).repeat(1, 2)
    negative = torch.stack([(saliency[row] == 0).nonzero()[:2, 0] for row in range(batch)])
    result = {
        "video": torch.randn(batch, clips, options["v_feat_dim"], generator=generator)
        * video_mask[..., None],
        "video_mask": video_mask,
        "query": torch.randn(batch, tokens, options["t_feat_dim"], generator=generator)
        * text_mask[..., None],
        "query_mask": text_mask,
        "saliency": saliency,
        "saliency_pos": positive,
        "saliency_neg": negative,
    }
    if options["dset_name"] != "tvsum":  # TVSum has no windows: the release trains saliency only
        result["windows"] = [
            torch.tensor([[0.2 + 0.1 * row, 0.1 + 0.05 * row]]) for row in range(batch)
        ]
    return result


def release_targets(batch: dict) -> dict:
    """A vhd batch's labels in the release criterion's ``targets`` format."""
    targets = {
        "saliency_pos_labels": batch["saliency_pos"],
        "saliency_neg_labels": batch["saliency_neg"],
        "saliency_all_labels": batch["saliency"],
        "saliency_pos_index": (batch["saliency"] > 0).long(),
    }
    if "windows" in batch:
        targets["span_labels"] = [{"spans": windows} for windows in batch["windows"]]
    return targets


def no_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", required=True, help="a checkout of dpaul06/VideoLights")
    parser.add_argument("--dataset", choices=list(DATASETS), default="qvhighlights")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--epoch", type=int, default=3, help="epoch index of the hard losses")
    options = parser.parse_args()
    sys.path.insert(0, options.release)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the release hard-codes .cuda()
    from video_lights.model import build_model  # the release, importable only now

    release_options = {**RELEASE_QV, **DATASETS[options.dataset]}
    torch.manual_seed(0)
    release, criterion = build_model(argparse.Namespace(**release_options))
    ours = VideoLightsNet(
        video_dim=release_options["v_feat_dim"], text_dim=release_options["t_feat_dim"]
    )
    ours.load_state_dict(convert_official_state_dict(release.state_dict()))
    generator = torch.Generator().manual_seed(1)
    batch = inputs(release_options, options.batch, options.clips, options.tokens, generator)
    targets = release_targets(batch)
    for model in (release, ours):
        model.train()
        no_dropout(model)  # same functions, no random masks
    theirs = release(
        batch["query"], batch["query_mask"].float(), batch["video"], batch["video_mask"].float()
    )
    mine = ours(batch["video"], batch["video_mask"], batch["query"], batch["query_mask"])
    pairs = {
        "pred_logits": (theirs["pred_logits"], mine.logits[-1]),
        "pred_spans": (theirs["pred_spans"], mine.spans[-1]),
        "aux_pred_spans": (theirs["aux_outputs"][0]["pred_spans"], mine.spans[0]),
        "saliency_scores": (theirs["saliency_scores"], mine.saliency),
        "saliency_scores_neg": (theirs["saliency_scores_neg"], mine.saliency_negative),
        "saliency_scores_mr": (theirs["saliency_scores_mr"], mine.saliency_mr),
        "proj_queries": (theirs["proj_queries"], mine.proj_queries[-1]),
        "src_vid": (theirs["src_vid"], mine.video_refined),
    }
    parameters = [sum(p.numel() for p in m.parameters()) for m in (release, ours)]
    results: dict[str, object] = {
        "dataset": options.dataset,
        "parameters": parameters,
        "outputs": {k: relative_difference(a, b) for k, (a, b) in pairs.items()},
    }
    terms = criterion(theirs, targets, options.epoch)
    weights = criterion.weight_dict
    release_total = sum(terms[k] * weights[k] for k in terms if k in weights)
    total, our_terms = VideoLightsCriterion(
        contrastive_align_loss_coef=release_options["contrastive_align_loss_coef"],
        hard_pos_neg_loss_coef=release_options["hard_pos_neg_loss_coef"],
    )(mine, batch, epoch=options.epoch)
    results["loss_terms"] = {
        k: relative_difference(terms[k] * weights[k], our_terms[k]) for k in terms if k in weights
    }
    missing = sorted({k for k in our_terms if k.startswith("loss")} ^ set(results["loss_terms"]))
    results["loss_total"] = relative_difference(release_total, total)
    release_total.backward()
    total.backward()
    release_grads = convert_official_state_dict(
        {n: gradient(p) for n, p in release.named_parameters()}
    )
    results["gradients"] = {
        n: relative_norm_difference(release_grads[n], gradient(p))
        for n, p in ours.named_parameters()
    }
    failures = [
        f"{group} {name}: {value:.3g}"
        for group, values in results.items()
        if group in TOLERANCES
        for name, value in (values.items() if isinstance(values, dict) else [("", values)])
        if not value <= TOLERANCES[group]  # NaN fails too
    ]
    if parameters[0] != parameters[1]:
        failures.append(f"parameter counts differ: {parameters}")
    if missing:
        failures.append(f"loss terms on one side only: {missing}")
    results["gradients"] = max(results["gradients"].values())  # the worst, to keep it short
    results["failures"] = failures
    print(json.dumps(results))
    sys.exit(1 if failures else 0)


def gradient(parameter: torch.nn.Parameter) -> torch.Tensor:
    return parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)


def relative_difference(release: torch.Tensor, ours: torch.Tensor) -> float:
    """max |release - ours| / max(1, max |release|)."""
    release, ours = release.detach().float(), ours.detach().float()
    scale = max(1.0, float(release.abs().max()))
    return float((release - ours).abs().max()) / scale


def relative_norm_difference(release: torch.Tensor, ours: torch.Tensor) -> float:
    """|release - ours| / max(1, |release|), Euclidean norms."""
    release, ours = release.detach().float(), ours.detach().float()
    return float((release - ours).norm()) / max(1.0, float(release.norm()))


if __name__ == "__main__":
    main()
