"""VideoLights vs the official release: the same weights and inputs through both, at the release's
QVHighlights sizes (or a smaller d = 256 variant), comparing every output, every weighted loss term
and every gradient. Needs a checkout of github.com/dpaul06/VideoLights (its ``video_lights``
package is imported, nothing is copied). Prints one JSON object of maximum absolute differences.

    .venv/bin/python benchmarks/videolights_parity.py --release ../VideoLights [--batch 4]
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


def inputs(batch: int, clips: int, tokens: int, generator: torch.Generator) -> dict:
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
    return {
        "video": torch.randn(batch, clips, RELEASE_QV["v_feat_dim"], generator=generator)
        * video_mask[..., None],
        "video_mask": video_mask,
        "query": torch.randn(batch, tokens, RELEASE_QV["t_feat_dim"], generator=generator)
        * text_mask[..., None],
        "query_mask": text_mask,
        "saliency": saliency,
        "saliency_pos": positive,
        "saliency_neg": negative,
        "windows": [torch.tensor([[0.2 + 0.1 * row, 0.1 + 0.05 * row]]) for row in range(batch)],
    }


def release_targets(batch: dict) -> dict:
    """A vhd batch's labels in the release criterion's ``targets`` format."""
    return {
        "span_labels": [{"spans": windows} for windows in batch["windows"]],
        "saliency_pos_labels": batch["saliency_pos"],
        "saliency_neg_labels": batch["saliency_neg"],
        "saliency_all_labels": batch["saliency"],
        "saliency_pos_index": (batch["saliency"] > 0).long(),
    }


def no_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", required=True, help="a checkout of dpaul06/VideoLights")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--clips", type=int, default=75)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--epoch", type=int, default=3, help="epoch index of the hard losses")
    options = parser.parse_args()
    sys.path.insert(0, options.release)
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # the release hard-codes .cuda()
    from video_lights.model import build_model  # the release, importable only now

    torch.manual_seed(0)
    release, criterion = build_model(argparse.Namespace(**RELEASE_QV))
    ours = VideoLightsNet()
    ours.load_state_dict(convert_official_state_dict(release.state_dict()))
    batch = inputs(options.batch, options.clips, options.tokens, torch.Generator().manual_seed(1))
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
    results: dict[str, object] = {
        "parameters": [sum(p.numel() for p in m.parameters()) for m in (release, ours)],
        "outputs": {k: float((a - b).abs().max().detach()) for k, (a, b) in pairs.items()},
    }
    terms = criterion(theirs, targets, options.epoch)
    weights = criterion.weight_dict
    release_total = sum(terms[k] * weights[k] for k in terms if k in weights)
    total, our_terms = VideoLightsCriterion()(mine, batch, epoch=options.epoch)
    results["loss_terms"] = {
        k: float(abs(terms[k] * weights[k] - our_terms[k])) for k in terms if k in weights
    }
    results["loss_total"] = [float(release_total), float(total)]
    release_total.backward()
    total.backward()
    release_grads = convert_official_state_dict(
        {
            n: p.grad if p.grad is not None else torch.zeros_like(p)
            for n, p in release.named_parameters()
        }
    )
    results["max_gradient_difference"] = max(
        float(
            ((p.grad if p.grad is not None else torch.zeros_like(p)) - release_grads[n]).abs().max()
        )
        for n, p in ours.named_parameters()
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
