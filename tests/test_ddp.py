"""Multi-process training and evaluation: every method through ``vhd`` with 2 CPU processes
(DDP over gloo), against one process on the same checkpoint.

DDP without ``find_unused_parameters`` requires every trainable parameter to get a gradient in
every step; evaluation must score each item once and average as one process does; prediction
must write one file holding each query once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest

from vhd.datamodules.synthetic import generate
from vhd.lightning_cli import VHDCLI
from vhd.models.base import VHDModule

REPO = Path(__file__).resolve().parents[1]
VHD = str(Path(sys.executable).parent / "vhd")
CONFIGS = REPO / "configs"
QUICKSTART = str(CONFIGS / "quickstart.yaml")
HPCL_YOUTUBE = str(CONFIGS / "hpcl_youtube.yaml")
RASL_PRETRAIN = str(CONFIGS / "rasl_pretrain.yaml")
SMALL_HPCL = [
    "--model.init_args.d_model=32", "--model.init_args.d_k=64", "--model.init_args.d_v=64",
    "--model.init_args.d_ff=64", "--model.init_args.num_heads=4",
    "--model.init_args.head_hidden_dim=32",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny datasets whose evaluation splits do not divide by two processes: moments val 5 and
    test 5 queries, YouTube-style val 5 videos over three domains (one with a single video)."""
    root = tmp_path_factory.mktemp("ddp_data")
    return {
        "moments": generate(
            "moments", root / "moments", seed=0, size="tiny", num_videos=30, queries_per_video=1
        ),
        "youtube": generate("highlights", root / "youtube", seed=0, size="tiny"),
        "unlabeled": generate("unlabeled", root / "unlabeled", seed=0, size="tiny"),
    }


# -- every trainable parameter takes part in the loss ---------------------------------------------
GRADIENT_CASES = {
    "videolights": (QUICKSTART, "moments", []),
    "videolights-paper-alignment": (
        QUICKSTART, "moments", ["--model.init_args.alignment_loss=paper"]
    ),
    "videolights-text-positions": (
        QUICKSTART, "moments", ["--model.init_args.use_text_positions=true"]
    ),
    "videolights-ablated": (
        QUICKSTART, "moments",
        ["--model.init_args.use_contrastive_align=false", "--model.init_args.use_fra=false",
         "--model.init_args.use_mr_to_hd=false", "--model.init_args.aux_loss=false"],
    ),
    "hpcl": (HPCL_YOUTUBE, "youtube", SMALL_HPCL),
    "hpcl-visual-only": (
        HPCL_YOUTUBE, "youtube", [*SMALL_HPCL, "--model.init_args.architecture=v_only"]
    ),
    "hpcl-ce-only": (
        HPCL_YOUTUBE, "youtube",
        [*SMALL_HPCL, "--model.init_args.hpcl_weight=0", "--model.init_args.rank_weight=0",
         "--model.init_args.global_decoder=false"],
    ),
    "baseline": (str(CONFIGS / "baseline_synthetic.yaml"), "moments", []),
    "baseline-highlights": (
        str(CONFIGS / "baseline_synthetic.yaml"), "youtube",
        ["--data=vhd.datamodules.HighlightDataModule", "--data.init_args.protocol=youtube",
         "--data.init_args.text_feature_dir=null", "--data.init_args.use_tef=false",
         "--model.init_args.video_dim=256"],
    ),
    "rasl": (RASL_PRETRAIN, "unlabeled", []),
    "rasl-mean-kpoints": (
        RASL_PRETRAIN, "unlabeled", ["--model.init_args.kpoint_contrast=false"]
    ),
    "rasl-concat": (RASL_PRETRAIN, "unlabeled", ["--model.init_args.fusion=concat"]),
}  # fmt: skip


class GradientProbe(L.Callback):
    """Names the trainable parameters without a gradient after each backward pass."""

    def __init__(self) -> None:
        self.without_gradient: set[str] = set()
        self.steps = 0

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.steps += 1
        self.without_gradient |= {
            name
            for name, parameter in pl_module.named_parameters()
            if parameter.requires_grad and parameter.grad is None
        }


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_every_trainable_parameter_gets_a_gradient(
    case: str, data: dict[str, Path], tmp_path: Path
) -> None:
    config, kind, extra = GRADIENT_CASES[case]
    probe = GradientProbe()
    cli = VHDCLI(
        VHDModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
        run=False,
        args=["--config", config, f"--data.init_args.data_root={data[kind]}",
              "--data.init_args.synthetic=null", f"--trainer.default_root_dir={tmp_path}", *extra],
    )  # fmt: skip
    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, callbacks=[probe],
    )  # fmt: skip
    trainer.fit(cli.model, datamodule=cli.datamodule)
    assert probe.steps == 2
    assert probe.without_gradient == set(), "DDP would stop at these; see keep_out_of_gradient"


def test_parameters_kept_out_of_the_gradient_stay_in_the_state_dict() -> None:
    from vhd.models import VideoLights

    model = VideoLights(hidden_dim=32, ffn_dim=64, num_heads=4, contrastive_dim=8)
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert frozen == {
        "net.bicmf.0.norm2.weight", "net.bicmf.0.norm2.bias",  # unused in the release too
        "net.text_positions.embedding.weight", "net.text_positions.norm.weight",
        "net.text_positions.norm.bias",  # use_text_positions=False
        "net.contrastive.video.weight", "net.contrastive.video.bias",  # the release's loss
    }  # fmt: skip
    assert frozen <= set(model.state_dict())


# -- 2 processes against 1, end to end through `vhd` ----------------------------------------------
def vhd(*args: str, processes: int) -> subprocess.CompletedProcess[str]:
    """``vhd ARGS`` on the CPU with ``processes`` DDP processes (one thread each, so one
    process and two compute with the same kernels)."""
    devices = [f"--trainer.devices={processes}", "--trainer.accelerator=cpu"]
    if processes > 1:
        devices.append("--trainer.strategy=ddp")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [VHD, *args, *devices], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def run_args(config: str, data_root: Path, run: Path, *extra: str) -> list[str]:
    return [
        "--config", config, f"--data.init_args.data_root={data_root}",
        "--data.init_args.synthetic=null", f"--trainer.default_root_dir={run}",
        f"--trainer.logger.init_args.save_dir={run}", *extra,
    ]  # fmt: skip


def logged_rows(run: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the run's only CSV log."""
    (log,) = run.glob("logs/version_*/metrics.csv")
    header, *rows = (line.split(",") for line in log.read_text().splitlines())
    return header, rows


def evaluation_figures(run: Path) -> dict[str, str]:
    """The one evaluation row of a validate/test run, as logged (every metric key)."""
    header, rows = logged_rows(run)
    (row,) = rows
    return {key: value for key, value in zip(header, row, strict=True) if "/" in key}


ArgsFor = Callable[[Path], list[str]]  # the arguments of a run writing into the given folder


def assert_one_process_figures(command: str, args_for: ArgsFor, tmp_path: Path) -> None:
    """``vhd validate|test`` on 2 processes logs exactly the figures of 1 process."""
    figures = {}
    for processes in (1, 2):
        run = tmp_path / f"{command}-{processes}"
        vhd(command, *args_for(run), processes=processes)
        figures[processes] = evaluation_figures(run)
    assert len(figures[1]) > 3 and figures[2] == figures[1]


def assert_one_submission(args_for: ArgsFor, tmp_path: Path, split: str) -> list[dict]:
    """``vhd predict`` on 2 processes writes one file, each query once, as 1 process writes it."""
    files = {}
    for processes in (1, 2):
        run = tmp_path / f"predict-{processes}"
        vhd("predict", *args_for(run), processes=processes)
        (written,) = run.glob("hl_*submission*.jsonl")
        assert written.name == f"hl_{split}_submission.jsonl"
        files[processes] = written.read_text()
    rows = [json.loads(line) for line in files[2].splitlines()]
    qids = [row["qid"] for row in rows]
    assert len(qids) == len(set(qids)) > 2
    assert files[2] == files[1]
    return rows


def fit_twice_validated(config: str, data_root: Path, run: Path, *extra: str) -> None:
    """``vhd fit`` on 2 processes, 2 epochs each validated: one row per figure per epoch."""
    vhd("fit", *run_args(config, data_root, run, "--trainer.max_epochs=2",
        "--trainer.check_val_every_n_epoch=1", *extra), processes=2)  # fmt: skip
    header, rows = logged_rows(run)
    figures = [key for key in header if key.startswith("val/")]
    assert figures
    for key in figures:
        logged = [row[0] for row in rows if row[header.index(key)]]
        assert logged == ["0", "1"], key  # epochs 0 and 1, once each


def from_checkpoint(config: str, data_root: Path, fit_run: Path, *extra: str) -> ArgsFor:
    checkpoint = f"--ckpt_path={fit_run / 'checkpoints' / 'last.ckpt'}"
    return lambda run: run_args(config, data_root, run, checkpoint, *extra)


def test_videolights_on_two_processes(data: dict[str, Path], tmp_path: Path) -> None:
    fit_run = tmp_path / "fit"
    fit_twice_validated(QUICKSTART, data["moments"], fit_run, "--trainer.precision=bf16-mixed")
    evaluated = from_checkpoint(
        QUICKSTART, data["moments"], fit_run, "--data.init_args.eval_batch_size=2"
    )
    assert_one_process_figures("validate", evaluated, tmp_path)
    assert_one_process_figures("test", evaluated, tmp_path)
    rows = assert_one_submission(evaluated, tmp_path, "test")
    assert all(row["pred_relevant_windows"] and row["pred_saliency_scores"] for row in rows)


def test_hpcl_on_two_processes(data: dict[str, Path], tmp_path: Path) -> None:
    fit_run = tmp_path / "fit"
    every_domain = "--data.init_args.domain=null"
    fit_twice_validated(HPCL_YOUTUBE, data["youtube"], fit_run, every_domain, *SMALL_HPCL,
                        "--trainer.precision=16-mixed")  # fmt: skip
    evaluated = from_checkpoint(HPCL_YOUTUBE, data["youtube"], fit_run, every_domain, *SMALL_HPCL)
    assert_one_process_figures("validate", evaluated, tmp_path)
    assert_one_submission(evaluated, tmp_path, "val")


def test_rasl_on_two_processes(data: dict[str, Path], tmp_path: Path) -> None:
    pretrain = tmp_path / "pretrain"
    vhd("fit", *run_args(RASL_PRETRAIN, data["unlabeled"], pretrain, "--trainer.max_epochs=2"),
        processes=2)  # fmt: skip
    header, rows = logged_rows(pretrain)
    assert [row[0] for row in rows if row[header.index("train/loss")]] == ["0", "1"]
    evaluated = from_checkpoint(
        str(CONFIGS / "rasl_eval_youtube.yaml"), data["youtube"], pretrain,
        "--data.init_args.domain=null",
    )  # fmt: skip
    assert_one_process_figures("test", evaluated, tmp_path)
    assert_one_submission(evaluated, tmp_path, "val")


# -- the evaluation sampler ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "batch_size", "world"), [(5, 2, 2), (7, 3, 3), (3, 4, 2), (0, 2, 2)]
)
def test_whole_batches_deal_out_the_batches_of_one_process(
    size: int, batch_size: int, world: int
) -> None:
    """Every item in its one-process batch, every process with a batch (a repeated one when
    there are fewer batches than processes), nothing when the split is empty."""
    from vhd.datamodules.samplers import WholeBatches

    dataset = list(range(size))
    one_process = [dataset[start : start + batch_size] for start in range(0, size, batch_size)]
    shares = [list(WholeBatches(dataset, world, rank, batch_size)) for rank in range(world)]
    batches = [
        share[start : start + batch_size]
        for share in shares
        for start in range(0, len(share), batch_size)
    ]
    assert all(batch in one_process for batch in batches)
    assert sorted({item for share in shares for item in share}) == dataset
    assert all(shares) == bool(size)
