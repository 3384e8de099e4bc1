"""A custom dataset from video files, as the README's "Your own videos" walks through it:
generate 40 videos with a planted highlight (a flash and a tone), ``vhd extract --recipe
pixel_mel``, then train the existing configs on the extracted folder with only the data root,
the feature folders and the widths overridden."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.submission_helpers import assert_logged_match, score_submission
from tests.test_hpcl_cli import expected_random_map
from vhd.cli import main as vhd
from vhd.datamodules.synthetic.videos import generate_video_dataset
from vhd.extract.recipes import recipe_class
from vhd.lightning_cli import make_cli

pytestmark = pytest.mark.usefixtures("two_threads")

REPO = Path(__file__).resolve().parents[1]
DATA = [
    "--data.init_args.synthetic=null",
    "--data.init_args.video_feature_dirs=[pixel_features]",
    "--data.init_args.feature_recipe=pixel_mel",
]
WIDTHS = ["--model.init_args.video_dim=1024", "--model.init_args.audio_dim=128"]


def run(run_dir: Path) -> list[str]:
    return [
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
    ]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("own_videos")
    generate_video_dataset(
        root, count=40, seed=0, durations=(20.0, 36.0), size=(160, 120), progress=None
    )
    assert vhd(["extract", str(root / "videos"), "--out", str(root), "--recipe", "pixel_mel"]) == 0
    return root


def test_hpcl_trained_on_extracted_features_finds_the_planted_highlights(
    extracted: Path, tmp_path: Path
) -> None:
    """Seed 2018: val/mAP 100 after 5 epochs; untrained models 11.6-100 (seeds 1-3), since the
    flash is an extreme of the features and a random scorer may point either way; chance ~24."""
    cli = make_cli(
        [
            "fit", "--config", str(REPO / "configs" / "hpcl_youtube.yaml"),
            f"--data.init_args.data_root={extracted}", *DATA,
            "--data.init_args.audio_feature_dirs=[mel_features]",
            "--data.init_args.domain=synthetic", *WIDTHS, *run(tmp_path),
            "--trainer.max_epochs=5",
        ]
    )  # fmt: skip
    (results,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    chance = expected_random_map(extracted)
    assert chance < 35
    assert results["val/mAP"] > 90 > chance + 50, (results, chance)


def test_rasl_pretrained_on_the_videos_ranks_the_planted_highlight_first(
    extracted: Path, tmp_path: Path
) -> None:
    """Unsupervised: pretrain on the 40 videos (no labels), score the 10 validation videos from
    their visual features alone. Seed 2018: test/mAP 97.9 with the paper's audio alignment (the
    default; 80.7 with the learned projection of earlier versions); chance about 25-29. RASL's
    objective does not fix the sign of the activation sequence (D(s * r) and the k-point loss are
    unchanged when s and r flip together), so which extreme becomes "top" depends on the
    initialisation: with the projection, seed 1 ranked the highlight last (11.7), with sigmoid or
    softmax activations too (30.5-99.4 by seed). The test pins the config's seed; a change that
    breaks extraction, the datamodules or RASL's scoring moves it off 97.9."""
    pretrain = make_cli(
        [
            "fit", "--config", str(REPO / "configs" / "rasl_pretrain.yaml"),
            f"--data.init_args.data_root={extracted}", *DATA,
            "--data.init_args.audio_feature_dirs=[mel_features]", *WIDTHS,
            *run(tmp_path / "pretrain"), "--trainer.max_epochs=10",
        ]
    )  # fmt: skip
    assert pretrain.trainer.current_epoch == 10
    evaluate = make_cli(
        [
            "test", "--config", str(REPO / "configs" / "rasl_eval_youtube.yaml"),
            f"--data.init_args.data_root={extracted}", *DATA, "--data.init_args.domain=synthetic",
            *WIDTHS, *run(tmp_path / "eval"),
            f"--ckpt_path={tmp_path / 'pretrain' / 'checkpoints' / 'last.ckpt'}",
        ]
    )  # fmt: skip
    metrics = evaluate.trainer.callback_metrics
    chance = expected_random_map(extracted)
    assert float(metrics["test/mAP"]) > 70 > chance + 35, (dict(metrics), chance)


def test_videolights_trains_on_extracted_video_and_query_features(
    extracted: Path, tmp_path: Path
) -> None:
    """The QVHighlights config on the folder: pixel_mel video + CLIP query tokens (random CLIP
    weights: this checks the file contract end to end, not what is learnt): the validation figures
    are what ``vhd eval`` scores of the val submission the same model writes."""
    weights = recipe_class("clip").random_weights(tmp_path / "weights")
    queries = ["--queries", str(extracted / "queries.jsonl")]
    args = ["extract", "--out", str(extracted), "--recipe", "clip", *queries]
    assert vhd([*args, "--weights", f"clip={weights['clip']}"]) == 0
    cli = make_cli(
        [
            "fit", "--config", str(REPO / "configs" / "videolights_qv.yaml"),
            f"--data.init_args.data_root={extracted}", "--data.init_args.synthetic=null",
            "--data.init_args.video_feature_dirs=[pixel_features]",
            "--data.init_args.text_feature_dir=[clip_text_features]",
            "--data.init_args.feature_recipe=[pixel_mel, clip]",
            "--data.init_args.num_workers=0", "--data.init_args.pin_memory=false",
            "--model.init_args.video_dim=1026", "--model.init_args.text_dim=512",
            *run(tmp_path / "videolights"), "--trainer.max_epochs=1",
        ]
    )  # fmt: skip
    (metrics,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    cli.datamodule.predict_split = "val"  # what ``vhd predict`` writes for the validated model
    cli.trainer.predict(cli.model, datamodule=cli.datamodule)
    submission = tmp_path / "videolights" / "hl_val_submission.jsonl"
    annotations = [extracted / "highlight_val_release.jsonl"]
    figures = score_submission(submission, annotations, "qvhighlights", tmp_path)
    assert {"MR-full-mAP", "HL-min-VeryGood-mAP"} < set(figures)
    empty = {key for key, value in figures.items() if math.isnan(value)}  # no moment that long
    assert empty == {"MR-middle-mAP", "MR-long-mAP"}  # videos of 20-36 s: short moments only
    assert all(math.isnan(metrics[f"val/{key}"]) for key in empty)
    figures = {key: value for key, value in figures.items() if key not in empty}
    assert_logged_match(metrics, "val/", figures, digits=2)
