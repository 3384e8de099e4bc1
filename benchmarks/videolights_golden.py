"""Writes the VideoLights golden fixture (``tests/fixtures/videolights_golden/*.pt``) from the
official release: per dataset shape (QVHighlights, Charades-STA, TVSum), the release's outputs,
every weighted loss term and every gradient in training mode (dropout on, with masks that vhd
replays), its outputs and loss terms in evaluation mode, and its predictions (its own
``compute_mr_results`` with post-processing); and the keys and shapes of the release's state dict
at its scripts' sizes (``release_state_dicts.json``, for
``tests/test_videolights_release_checkpoint.py``). ``tests/test_videolights_golden.py`` compares
vhd against the fixture without the release.

Sizes: the release's real ones (d = 256, 8 heads, FFN 1024, 10 queries, contrastive 64, input
dims of the release's scripts: QVHighlights and Charades video 3586 = SlowFast 2304 + CLIP 512 +
BLIP-2 768 + TEF 2, text 1280 = CLIP 512 + BLIP-2 768; TVSum video I3D 2048 + TEF 2, text CLIP
512), but 1 Bi-CMF and 1 encoder layer, 2 decoder layers (so the auxiliary losses and the later
decoder layers' path are covered) and 3-4 short clips batches. d cannot shrink: the release's
anchor sine embedding is hard-wired to 256. Weights and features are seeded recipes
(``tests/videolights_golden_helpers.py``); the release is imported from a checkout, nothing is
copied. Dropout masks are shared by matching: vhd runs first with masks seeded per call
(``SeededMasks``, which the test redraws) and keeps each dropout's input; each dropout the release
then calls reuses the mask of the vhd call with the same input (up to a transpose or reshape), and
every vhd call must be matched.

    .venv/bin/python benchmarks/videolights_golden.py --release ../VideoLights
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import torch
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from videolights_parity import release_targets  # noqa: E402  (beside this script)

from tests import videolights_golden_helpers as golden  # noqa: E402
from vhd.models import VideoLights  # noqa: E402
from vhd.models.videolights import convert_official_state_dict  # noqa: E402

EPOCH = 3  # hard-loss weight W_j = (EPOCH + 1) x coef in training mode
RELEASE_COMMON = dict(
    device="cpu", hidden_dim=256, dropout=0.1, nheads=8, dim_feedforward=1024, bicmf_layers=1,
    enc_layers=1, dec_layers=2, pre_norm=False, position_embedding="sine", max_q_l=32,
    input_dropout=0.5, a_feat_dim=0, num_queries=10, aux_loss=True, mr_to_hd_loss=True,
    contrastive_align_loss=True, contrastive_hdim=64, span_loss_type="l1", use_txt_pos=False,
    n_input_proj=2, set_cost_span=10, set_cost_giou=1, set_cost_class=4, span_loss_coef=10,
    giou_loss_coef=1, label_loss_coef=4, lw_saliency=1.0, eos_coef=0.1, temperature=0.07,
    saliency_margin=0.2, hard_pos_neg_loss=True, mr_to_hd_loss_coef=1.0, cos_sim_loss_coef=1.0,
)  # fmt: skip
RELEASE_CASES = {  # the options of the release's scripts (qvhl, charades_sta, tvsum train.sh)
    "qvhighlights": dict(
        dset_name="hl", t_feat_dim=1280, v_feat_dim=3586, clip_length=2, max_v_l=75,
        contrastive_align_loss_coef=0.2, hard_pos_neg_loss_coef=10.0, n_epoch=200,
    ),
    "charades": dict(
        dset_name="charadesSTA", t_feat_dim=1280, v_feat_dim=3586, clip_length=1, max_v_l=75,
        contrastive_align_loss_coef=0.3, hard_pos_neg_loss_coef=10.0, n_epoch=100,
    ),
    "tvsum": dict(
        dset_name="tvsum", t_feat_dim=512, v_feat_dim=2050, clip_length=2, max_v_l=1000,
        contrastive_align_loss_coef=0.8, hard_pos_neg_loss_coef=1.0, n_epoch=2000,
    ),
}  # fmt: skip
LENGTHS = {  # (clips, tokens) per sample: unequal, so the tiled Bi-CMF mask matters
    "qvhighlights": [(12, 5), (9, 3), (7, 4)],
    "charades": [(10, 6), (8, 4), (6, 5), (9, 3)],  # the release's Charades eval batch is 4
    "tvsum": [(14, 3), (14, 4), (11, 3)],
}


def vhd_hparams(options: dict) -> dict:
    """The VideoLights arguments equal to a release option namespace."""
    return dict(
        video_dim=options["v_feat_dim"], text_dim=options["t_feat_dim"],
        hidden_dim=options["hidden_dim"], num_heads=options["nheads"],
        ffn_dim=options["dim_feedforward"], num_bicmf_layers=options["bicmf_layers"],
        num_encoder_layers=options["enc_layers"], num_decoder_layers=options["dec_layers"],
        num_queries=options["num_queries"], contrastive_dim=options["contrastive_hdim"],
        contrastive_align_loss_coef=options["contrastive_align_loss_coef"],
        hard_pos_neg_loss_coef=options["hard_pos_neg_loss_coef"],
        cos_sim_loss_coef=options["cos_sim_loss_coef"],
        mr_to_hd_loss_coef=options["mr_to_hd_loss_coef"],
    )  # fmt: skip


def labels(case: str, video_mask: Tensor, clip_len: float, generator: torch.Generator) -> dict:
    """Targets shaped by each dataset's rules (reference section 1.4)."""
    batch, length = video_mask.shape
    saliency = torch.zeros(batch, length)
    windows, positive, negative = [], [], []
    for row in range(batch):
        clips = int(video_mask[row].sum())
        if case == "tvsum":  # aggregated scores x 12 / 80, pairs (argmax, argmin)
            scores = torch.randint(0, 81, (clips,), generator=generator).float() * 12 / 80
            saliency[row, :clips] = scores
            positive.append([int(scores.argmax())])
            negative.append([int(scores.argmin())])
            continue
        start = int(torch.randint(0, clips - 3, (1,), generator=generator))
        end = start + int(torch.randint(1, 3, (1,), generator=generator))  # clips [start, end]
        if case == "charades":  # 1 on the window's clips; 2 positives inside, 2 negatives out
            saliency[row, start : end + 1] = 1.0
            inside = list(range(start, end + 1))
            outside = [i for i in range(clips) if i not in inside]
            positive.append(inside[:2])
            negative.append([outside[0], outside[-1]])
            windows.append([[start * clip_len, (end + 1) * clip_len]])
        else:  # QVHighlights: summed 0-4 ratings of 3 annotators on the relevant clips
            ratings = torch.randint(1, 13, (end - start + 1,), generator=generator).float()
            saliency[row, start : end + 1] = ratings
            outside = [i for i in range(clips) if i < start or i > end]
            order = ratings.argsort(descending=True)
            positive.append([start + int(order[0]), start + int(order[0])])
            negative.append([start + int(order[-1]), outside[0]])
            windows.append([[start * clip_len, (end + 1) * clip_len], [0.0, clip_len]])
    result = {
        "saliency": saliency,
        "saliency_pos": torch.tensor(positive),
        "saliency_neg": torch.tensor(negative),
    }
    if windows:  # (center, width) over ctx_l x clip_len seconds
        result["windows"] = []
        for row, rows in enumerate(windows):
            span = int(video_mask[row].sum()) * clip_len
            seconds = torch.tensor(rows) / span
            result["windows"].append(
                torch.stack([(seconds[:, 0] + seconds[:, 1]) / 2, seconds[:, 1] - seconds[:, 0]], 1)
            )
    return result


def make_case(case: str) -> dict:
    """Everything but the release's numbers: options, hparams, weight recipes, inputs."""
    options = {**RELEASE_COMMON, **RELEASE_CASES[case]}
    lengths = LENGTHS[case]
    clips, tokens = max(c for c, _ in lengths), max(t for _, t in lengths)
    video_mask = torch.zeros(len(lengths), clips, dtype=torch.bool)
    text_mask = torch.zeros(len(lengths), tokens, dtype=torch.bool)
    for row, (c, t) in enumerate(lengths):
        video_mask[row, :c] = True
        text_mask[row, :t] = True
    seed = golden.name_seed(case)
    clip_len = float(options["clip_length"])
    meta = [
        {"qid": row, "vid": f"{case}_{row}", "query": f"query {row}",
         "duration": c * clip_len, "clip_len": clip_len, "num_clips": c}
        for row, (c, _) in enumerate(lengths)
    ]  # fmt: skip
    return {
        "release_options": options,
        "hparams": vhd_hparams(options),
        "epoch": EPOCH,
        "features": {  # seeded: video with TEF columns, text without
            "video": (seed, options["v_feat_dim"], True),
            "query": (seed + 1, options["t_feat_dim"], False),
        },
        "video_mask": video_mask,
        "query_mask": text_mask,
        "labels": labels(case, video_mask, clip_len, torch.Generator().manual_seed(seed + 2)),
        "meta": meta,
    }


# -- the release -----------------------------------------------------------------------------------
def import_release(path: str) -> types.ModuleType:
    """The release's model and inference modules, with its unused imports stubbed (torchtext,
    sklearn) and its hard-coded ``.cuda()`` made a no-op."""
    sys.path.insert(0, path)
    for name in ("torchtext", "torchtext.vocab", "sklearn", "sklearn.metrics"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchtext"].vocab = sys.modules["torchtext.vocab"]
    sys.modules["sklearn.metrics"].precision_recall_curve = None
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    import video_lights.inference as inference  # the release, importable only now

    return inference


class VhdRecorder:
    """vhd side, run first: the seeded masks, each kept with the dropout's input."""

    def __init__(self, masks: golden.SeededMasks) -> None:
        self.masks = masks
        self.calls: list[tuple[Tensor, Tensor, float]] = []

    def __call__(self, x: Tensor, p: float) -> Tensor:
        keep = self.masks(x, p)
        self.calls.append((x.detach().clone(), keep, p))
        return keep


def layouts(source: Tensor, shape: torch.Size) -> list[tuple]:
    """(to vhd's layout, back to the release's) for a release tensor: a reshape, or a transpose
    then a reshape (sequence-first vs batch-first tensors, attention weights as (B * heads,
    Lq, Lk) vs (B, heads, Lq, Lk), FRA's similarity feature as (B, d, Lv))."""
    pairs = [(lambda t: t.reshape(shape), lambda m: m.reshape(source.shape))]
    for a, b in ((0, 1), (1, 2))[: max(source.dim() - 1, 0)]:
        transposed = source.transpose(a, b).shape
        pairs.append(
            (lambda t, a=a, b=b: t.transpose(a, b).reshape(shape),
             lambda m, a=a, b=b, s=transposed: m.reshape(s).transpose(a, b))
        )  # fmt: skip
    return pairs


class ReleaseMatcher:
    """Release side: each dropout reuses the mask of the first unused vhd call whose input is
    the same up to a layout; calls vhd does not make (the decoder of the negative pass, whose
    outputs the release discards) get random masks. Every vhd call must be matched."""

    def __init__(self, calls: list[tuple[Tensor, Tensor, float]], seed: int) -> None:
        self.calls = calls
        self.used = [False] * len(calls)
        self.generator = torch.Generator().manual_seed(seed)
        self.unmatched = 0

    def __call__(self, x: Tensor, p: float) -> Tensor:
        value = x.detach()
        for index, (ours, keep, rate) in enumerate(self.calls):
            if self.used[index] or rate != p or ours.numel() != value.numel():
                continue
            for to_vhd, to_release in layouts(value, ours.shape):
                if torch.allclose(to_vhd(value), ours, rtol=1e-3, atol=1e-4):
                    self.used[index] = True
                    return to_release(keep)
        self.unmatched += 1
        return torch.rand(value.shape, generator=self.generator) >= p

    def check(self) -> None:
        missing = [
            (tuple(ours.shape), rate)
            for (ours, _, rate), used in zip(self.calls, self.used, strict=True)
            if not used
        ]
        if missing:
            raise RuntimeError(
                f"{len(missing)} vhd dropout calls, first {missing[0]}, match no release call: "
                "the forward passes differ"
            )


def release_layout(out: dict) -> dict[str, Tensor]:
    """The release's outputs under vhd's names and shapes (layers stacked first)."""
    layers = [*out["aux_outputs"], out]
    return {
        "logits": torch.stack([layer["pred_logits"] for layer in layers]),
        "spans": torch.stack([layer["pred_spans"] for layer in layers]),
        "proj_queries": torch.stack([layer["proj_queries"] for layer in layers]),
        "saliency": out["saliency_scores"],
        "saliency_negative": out["saliency_scores_neg"],
        "saliency_mr": out["saliency_scores_mr"],
        "proj_text": out["proj_txt_mem"],
        "proj_video": out["proj_vid_mem"],
        "text": out["src_txt"],
        "video_refined": out["src_vid"],
    }


def release_run(model, criterion, batch: dict, epoch: int) -> tuple[dict, dict, Tensor]:
    out = model(batch["query"], batch["query_mask"].float(), batch["video"],
                batch["video_mask"].float())  # fmt: skip
    terms = criterion(out, release_targets(batch), epoch)
    weights = criterion.weight_dict
    weighted = {name: terms[name] * weights[name] for name in terms if name in weights}
    total = sum(weighted.values())
    return out, {name: value.detach() for name, value in weighted.items()}, total


def release_predictions(inference, model, batch: dict, options: dict) -> list[dict]:
    """The release's own prediction path on one batch (post-processing included)."""
    meta = [{key: m[key] for key in ("qid", "query", "vid", "duration")} for m in batch["meta"]]
    inputs = {
        "query_feat": (batch["query"], batch["query_mask"].float()),
        "video_feat": (batch["video"], batch["video_mask"].float()),
    }
    opt = argparse.Namespace(**options, pin_memory=False, no_sort_results=False, debug=False)
    with torch.no_grad():
        predictions, _ = inference.compute_mr_results(model, [(meta, inputs)], opt)
    return [
        {"pred_relevant_windows": p["pred_relevant_windows"],
         "pred_saliency_scores": p["pred_saliency_scores"]}
        for p in predictions
    ]  # fmt: skip


def gradients(model: torch.nn.Module) -> dict:
    """Every parameter's gradient (zero where none) as a sketch row, by release name."""
    grads = {
        name: parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        for name, parameter in model.named_parameters()
    }
    return {"names": list(grads), "sketches": golden.sketch_table(grads)}


def stored(outputs: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: golden.record(name, value.detach()) for name, value in outputs.items()}


def produce(case: str, inference) -> tuple[dict, dict]:
    """The fixture of one case, and vhd's largest differences from it (a first parity look)."""
    spec = make_case(case)
    options = spec["release_options"]
    torch.manual_seed(0)
    model, criterion = inference.build_model(argparse.Namespace(**options))
    recipes = golden.weight_recipes(model.state_dict())
    weights = {name: golden.build(recipe) for name, recipe in recipes.items()}
    model.load_state_dict(weights)
    batch = golden.vhd_batch(spec)
    # training mode, dropout on: vhd first with seeded masks, then the release with the same
    ours = VideoLights(**spec["hparams"])
    ours.net.load_state_dict(convert_official_state_dict(weights))
    ours.train()
    masks = golden.SeededMasks(golden.name_seed(case) + 3)
    recorder = VhdRecorder(masks)
    with golden.shared_dropout(recorder):
        mine = ours(batch)
    _, our_terms = ours.criterion(mine, batch, epoch=spec["epoch"])
    model.train()
    criterion.train()
    matcher = ReleaseMatcher(recorder.calls, golden.name_seed(case) + 4)
    with golden.shared_dropout(matcher, modules=("video_lights.",)):
        out, terms, total = release_run(model, criterion, batch, spec["epoch"])
    matcher.check()
    total.backward()
    release_outputs = {k: v.detach() for k, v in release_layout(out).items()}
    train = {
        "outputs": stored(release_outputs),
        "losses": terms,
        "gradients": gradients(model),
        "mask_seed": masks.seed,
        "mask_calls": masks.calls,
    }
    differences = {
        "train_" + name: float((getattr(mine, name).detach() - value).abs().max())
        for name, value in release_outputs.items()
    }
    differences.update(
        {f"train_{k}": float(abs(our_terms[k].detach() - v)) for k, v in terms.items()}
    )
    differences["release_calls_without_vhd_counterpart"] = matcher.unmatched
    # evaluation mode and predictions
    model.eval()
    criterion.eval()
    with torch.no_grad():
        out, terms, _ = release_run(model, criterion, batch, 0)
    evaluation = {"outputs": stored(release_layout(out)), "losses": terms}
    return {
        "release_commit": "76308bb",
        "recipes": recipes,
        "checksums": torch.stack([golden.checksum(value) for value in weights.values()]),
        "feature_checksums": {key: golden.checksum(batch[key]) for key in spec["features"]},
        **{key: value for key, value in spec.items() if key != "release_options"},
        "release_options": options,
        "train": train,
        "eval": evaluation,
        "predictions": release_predictions(inference, model, batch, options),
    }, differences


def release_state_shapes(inference) -> dict[str, dict[str, list[int]]]:
    """Every key and shape of the release's state dict at the sizes of its scripts (1 Bi-CMF,
    3 encoder and 3 decoder layers), per dataset: what a release checkpoint's ``model`` holds."""
    shapes = {}
    for case in golden.CASES:
        options = {**RELEASE_COMMON, **RELEASE_CASES[case], "enc_layers": 3, "dec_layers": 3}
        model, _ = inference.build_model(argparse.Namespace(**options))
        shapes[case] = {name: list(value.shape) for name, value in model.state_dict().items()}
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", required=True, help="a checkout of dpaul06/VideoLights")
    parser.add_argument("--out", default=str(golden.FIXTURES))
    parser.add_argument("--cases", nargs="+", default=list(golden.CASES))
    options = parser.parse_args()
    inference = import_release(options.release)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for case in options.cases:
        fixture, report[case] = produce(case, inference)
        temporary = out / f".{case}.pt.tmp"
        torch.save(fixture, temporary)
        temporary.replace(out / f"{case}.pt")
    shapes = out / golden.RELEASE_SHAPES.name
    temporary = out / f".{shapes.name}.tmp"
    cases = release_state_shapes(inference)
    lines = ",\n".join(  # one key per line
        f"{json.dumps(case)}: {{\n"
        + ",\n".join(f"  {json.dumps(name)}: {json.dumps(shape)}" for name, shape in keys.items())
        + "\n}"
        for case, keys in cases.items()
    )
    temporary.write_text("{\n" + lines + "\n}\n")
    temporary.replace(shapes)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
