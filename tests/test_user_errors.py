"""The fault matrix: bad input through the ``vhd`` command ends in one ``error:`` line, exit 2.

Each case breaks a copy of one tiny synthetic dataset the way a user would (a missing or corrupt
feature file, a malformed line, a repeated qid, NaN features, a file that is not a checkpoint, a
folder that cannot be written) and checks the exit status, that stderr holds exactly one
``error:`` line naming the file and record, and no traceback. Most cases call ``vhd.cli.main`` in
this process (the code path of the command); a few run ``python -m vhd.cli`` as a user would, one
of them with stdout going to a log file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from vhd.cli import main
from vhd.datamodules.cache import check_finite
from vhd.datamodules.features import FeatureError, FeatureFolder
from vhd.errors import one_line

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "baseline_synthetic.yaml"
TRAIN_VID = "synth_00001_0.0_80.0"  # qids 2 and 3, train.jsonl lines 3 and 4
VAL_VID = "synth_00008_0.0_80.0"  # qids 16 and 17, val.jsonl lines 1 and 2
TEST_VID = "synth_00003_0.0_80.0"  # qids 6 and 7, test.jsonl lines 1 and 2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vhd.datamodules.synthetic import generate

    return generate("moments", tmp_path_factory.mktemp("moments"), seed=0, size="tiny")


def args(data_root: Path, run_dir: Path, *extra: str, config: Path = BASELINE) -> list[str]:
    return [
        "--config", str(config),
        f"--data.init_args.data_root={data_root}", "--data.init_args.synthetic=null",
        f"--trainer.default_root_dir={run_dir}", f"--trainer.logger.init_args.save_dir={run_dir}",
        "--trainer.max_epochs=1", *extra,
    ]  # fmt: skip


def broken(data: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    """A copy of the dataset with one fault."""
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    damage(copy)
    return copy


def one_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The single ``error:`` line of a user error, checked: exit 2, no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def vhd(*argv: str, env: dict[str, str] | None = None, stdout=subprocess.PIPE):
    """``vhd`` as a user runs it: a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "vhd.cli", *argv], cwd=REPO, stdout=stdout,
        stderr=subprocess.PIPE, text=True, timeout=600, env={**os.environ, **(env or {})},
    )  # fmt: skip


def save_features(path: Path, features: np.ndarray) -> None:
    np.savez(path, features=features.astype(np.float32))


def features_of(root: Path, vid: str) -> tuple[Path, np.ndarray]:
    path = root / "video_features" / f"{vid}.npz"
    with np.load(path) as archive:
        return path, archive["features"]


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


# -- 7. progress in a log file (its run is the checkpoint the other cases use) --------------------
@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Two epochs of the baseline with stdout to a file: the run folder and the log's text."""
    run_dir = tmp_path_factory.mktemp("run")
    log = run_dir / "train.log"
    with log.open("w") as out:
        done = vhd("fit", *args(data, run_dir, "--trainer.max_epochs=2"), stdout=out)
    assert done.returncode == 0, done.stderr
    return run_dir, log.read_text()


def test_fit_into_a_log_file_prints_a_start_line_and_one_line_per_epoch(
    trained: tuple[Path, str],
) -> None:
    run_dir, log = trained
    lines = log.splitlines()
    start = next(line for line in lines if line.startswith("vhd fit: "))
    assert f"run folder {run_dir}" in start and "data train 16, val 4" in start
    assert "device cpu" in start
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    for line in epochs:
        assert "steps/s, train loss " in line and ", val MR-full-mAP " in line, line
        loss = float(line.split("train loss ")[1].split(",")[0])
        assert np.isfinite(loss) and loss > 0


# -- 1. setup-time errors of fit / validate / test / predict ---------------------------------------
def drop_train_features(root: Path) -> None:
    features_of(root, TRAIN_VID)[0].unlink()


def corrupt_val_features(root: Path) -> None:
    path, _ = features_of(root, VAL_VID)
    path.write_bytes(path.read_bytes()[:100])


def shorten_test_features(root: Path) -> None:
    path, features = features_of(root, TEST_VID)
    save_features(path, features[:10])


def malform_test_line(root: Path) -> None:
    replace_line(root / "annotations" / "test.jsonl", 2, '{"qid": 7, "query": oops')


@pytest.mark.parametrize(
    ("subcommand", "damage", "expected"),
    [
        ("fit", drop_train_features, ["missing from ", "train.jsonl:3", "qid=2"]),
        ("validate", corrupt_val_features, [f"{VAL_VID}.npz cannot be read", "re-extract"]),
        ("test", shorten_test_features, ["test.jsonl:1", "qid=6", "10 feature clips"]),
        ("predict", malform_test_line, ["test.jsonl:2: not valid JSON"]),
    ],
)
def test_setup_errors_are_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    subcommand: str, damage: Callable[[Path], None], expected: list[str],
) -> None:  # fmt: skip
    root = broken(data, tmp_path, damage)
    line = one_error(capsys, main([subcommand, *args(root, tmp_path / "run")]))
    for part in expected:
        assert part in line, line


def test_a_user_sees_one_line_and_debug_shows_the_traceback(data: Path, tmp_path: Path) -> None:
    root = broken(data, tmp_path, drop_train_features)
    plain = vhd("fit", *args(root, tmp_path / "run"))
    errors = [line for line in plain.stderr.splitlines() if line.startswith("error:")]
    assert plain.returncode == 2 and len(errors) == 1 and "Traceback" not in plain.stderr
    assert f"{TRAIN_VID}" in errors[0] and "train.jsonl:3" in errors[0]
    debug = vhd("fit", *args(root, tmp_path / "run"), env={"VHD_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "vhd.errors.FeatureError" in debug.stderr


def test_an_unknown_domain_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vhd.datamodules.synthetic import generate

    root = generate("highlights", tmp_path / "highlights", seed=0, size="tiny")
    argv = [
        "fit", "--model=vhd.models.SimilarityBaseline", "--model.init_args.video_dim=8",
        "--model.init_args.text_dim=8", "--data=vhd.datamodules.HighlightDataModule",
        f"--data.init_args.data_root={root}", "--data.init_args.domain=skiing_nope",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    line = one_error(capsys, main(argv))
    assert "unknown youtube domain 'skiing_nope'" in line and "splits.json lists" in line


def test_a_constructor_rejecting_its_settings_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """jsonargparse wraps what a constructor raises; the CLI unwraps it."""
    argv = [
        "fit", "--model=vhd.models.SimilarityBaseline", "--model.init_args.video_dim=8",
        "--model.init_args.text_dim=8", "--data=vhd.datamodules.HighlightDataModule",
        "--data.init_args.split_protocol=longest_two", f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    line = one_error(capsys, main(argv))
    assert line.startswith("error: vhd.datamodules.HighlightDataModule: split_protocol=")


def test_worker_errors_keep_only_the_original_message() -> None:
    """A DataLoader worker's exception comes back with the worker's traceback in its message."""
    from torch._utils import ExceptionWrapper

    try:
        raise FeatureError("/data/v.npz contains NaN or inf values (1 of 4 rows); re-extract it")
    except FeatureError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(FeatureError) as raised:
        wrapper.reraise()
    assert "Original Traceback" in str(raised.value)
    assert one_line(raised.value) == (
        "/data/v.npz contains NaN or inf values (1 of 4 rows); re-extract it"
    )


# -- 2. duplicate qids -----------------------------------------------------------------------------
def test_a_repeated_training_qid_names_both_lines(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def repeat(root: Path) -> None:
        path = root / "annotations" / "train.jsonl"
        record = json.loads(path.read_text().splitlines()[4])  # line 5, qid 4
        record["qid"] = 2  # also line 3
        replace_line(path, 5, json.dumps(record))

    root = broken(data, tmp_path, repeat)
    line = one_error(capsys, main(["fit", *args(root, tmp_path / "run")]))
    assert f"{root}/annotations/train.jsonl:5: qid 2 is already used at " in line
    assert f"{root}/annotations/train.jsonl:3" in line


def test_a_repeated_validation_qid_names_the_file_and_both_lines(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def repeat(root: Path) -> None:
        path = root / "annotations" / "val.jsonl"
        path.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")

    root = broken(data, tmp_path, repeat)
    line = one_error(capsys, main(["validate", *args(root, tmp_path / "run")]))
    assert f"val.jsonl:5: qid 16 is already used at {root}/annotations/val.jsonl:1" in line


def test_eval_names_a_repeated_ground_truth_qid_and_both_lines(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = tmp_path / "gt.jsonl"
    lines = (data / "annotations" / "val.jsonl").read_text().splitlines()
    gt.write_text("\n".join([*lines, lines[1]]) + "\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text(
        "".join(
            json.dumps({"qid": json.loads(line)["qid"], "pred_saliency_scores": [0.5] * 40}) + "\n"
            for line in lines
        )
    )
    code = main(["eval", "--gt", str(gt), "--pred", str(pred)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 2 and out.count("error:") == 1
    assert f"{gt}:5: qid 17 is already in the ground truth at {gt}:2" in out


# -- 3. NaN / inf features -------------------------------------------------------------------------
def test_nan_features_are_found_at_setup_all_named_at_once(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def poison(root: Path) -> None:
        for vid, value in ((TRAIN_VID, np.nan), ("synth_00010_0.0_80.0", np.inf)):
            path, features = features_of(root, vid)
            features[3, 5] = value
            save_features(path, features)

    root = broken(data, tmp_path, poison)
    argv = ["fit", *args(root, tmp_path / "run", "--data.init_args.num_workers=2")]
    line = one_error(capsys, main(argv))
    assert "2 feature files contain NaN or inf values" in line
    assert f"{TRAIN_VID}.npz (1 of 40 rows)" in line and "synth_00010_0.0_80.0.npz" in line


def test_the_finite_check_reads_each_file_version_once(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = broken(data, tmp_path, lambda root: None)
    folder = FeatureFolder(root / "video_features")
    names = sorted(path.stem for path in folder.folder.glob("*.npz"))
    reads: list[str] = []
    original = FeatureFolder.read
    monkeypatch.setattr(FeatureFolder, "read", lambda self, n: reads.append(n) or original(self, n))
    check_finite(folder, names, tmp_path / "cache")
    assert sorted(reads) == names
    reads.clear()
    check_finite(folder, names, tmp_path / "cache")
    assert reads == []  # the verdicts are kept: a second run only stats the files
    path, features = features_of(root, TRAIN_VID)
    features[0, 0] = np.inf
    save_features(path, features)
    os.utime(path, ns=(1, 1))  # a new version even on coarse clocks
    with pytest.raises(FeatureError, match=rf"1 feature files .*{TRAIN_VID}\.npz \(1 of 40 rows\)"):
        check_finite(folder, names, tmp_path / "cache")
    assert reads == [TRAIN_VID]


# -- 4. checkpoints that are not one ---------------------------------------------------------------
def test_a_file_that_is_not_a_checkpoint_is_named_with_what_it_is(
    data: Path, trained: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = trained[0] / "checkpoints" / "best.ckpt"
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(best.read_bytes()[:3000])
    for path, found in [
        (noise, "5000 bytes that are neither a torch zip archive nor a pickle"),
        (cut, "a truncated or damaged zip archive (3000 bytes"),
        (tmp_path / "absent.ckpt", "no such file"),
    ]:
        code = main(["test", *args(data, tmp_path / "run", f"--ckpt_path={path}")])
        line = one_error(capsys, code)
        assert str(path) in line and found in line and "weights_only" not in line, line
    run = vhd("test", *args(data, tmp_path / "run", f"--ckpt_path={noise}"))
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr


def test_another_methods_checkpoint_names_its_class_and_settings(
    data: Path, trained: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = trained[0] / "checkpoints" / "best.ckpt"
    quickstart = REPO / "configs" / "quickstart.yaml"
    argv = args(data, tmp_path / "run", f"--ckpt_path={best}", config=quickstart)
    line = one_error(capsys, main(["validate", *argv]))
    assert f"{best} is a checkpoint of vhd.models.SimilarityBaseline (video_dim=258" in line
    assert "but the config builds vhd.models.VideoLights" in line
    # the same method, but weights of other sizes than its settings say
    checkpoint = torch.load(best, weights_only=True)
    checkpoint["hyper_parameters"]["hidden_dim"] = 64
    resized = tmp_path / "resized.ckpt"
    torch.save(checkpoint, resized)
    line = one_error(
        capsys, main(["validate", *args(data, tmp_path / "run", f"--ckpt_path={resized}")])
    )
    assert "does not fit the configured SimilarityBaseline" in line
    assert "video_proj.weight is (128, 258) there, (64, 258) here" in line


# -- 5. predict: the folder is checked first, the path is printed ----------------------------------
def test_predict_checks_its_folder_before_predicting_and_prints_the_file(
    data: Path, trained: tuple[Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from vhd.models.base import VHDModule

    best = trained[0] / "checkpoints" / "best.ckpt"
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    calls: list[int] = []
    original = VHDModule.predict_step
    monkeypatch.setattr(
        VHDModule, "predict_step", lambda self, *a: calls.append(1) or original(self, *a)
    )
    writer = [
        "--trainer.callbacks+=vhd.writers.SubmissionWriter",
        f"--trainer.callbacks.output_dir={blocker / 'out'}",
    ]
    code = main(["predict", *args(data, tmp_path / "run", f"--ckpt_path={best}", *writer)])
    line = one_error(capsys, code)
    assert f"cannot write into {blocker / 'out'}" in line and "output_dir" in line
    assert calls == []  # refused before any prediction
    code = main(["predict", *args(data, blocker / "run", f"--ckpt_path={best}")])
    assert "--trainer.default_root_dir" in one_error(capsys, code)
    assert main(["predict", *args(data, tmp_path / "run", f"--ckpt_path={best}")]) == 0
    written = tmp_path / "run" / "hl_test_submission.jsonl"
    assert f"predictions written to {written}" in capsys.readouterr().out
    assert len(written.read_text().splitlines()) == 4
    assert not [p for p in written.parent.iterdir() if p.name.endswith(".tmp")]  # atomic


# -- 6. eval --allow-partial counts what it leaves out ---------------------------------------------
def test_allow_partial_says_how_many_ground_truth_qids_are_not_scored(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = data / "annotations" / "val.jsonl"
    records = [json.loads(line) for line in gt.read_text().splitlines()]
    pred = tmp_path / "pred.jsonl"
    pred.write_text(
        "".join(
            json.dumps({"qid": r["qid"], "pred_saliency_scores": [0.5] * 40}) + "\n"
            for r in records[:3]
        )
    )
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--allow-partial"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 of 4 ground-truth qids have no prediction and are left out of the score" in out
