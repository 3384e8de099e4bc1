"""W&B tracking as a researcher uses it, offline: ``configs/loggers/wandb.yaml`` as a second
``--config``. The runs are read back from what W&B wrote (its binary ``.wandb`` log, the one
``wandb sync`` uploads, and the files beside it): config, tags, name, metrics, tables, the
submission artifact, a clean exit, and the run folder they land in."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_cli import overrides
from tests.test_hpcl_cli import SMALL_MODEL, data_args
from vhd.cli import main
from vhd.datamodules.synthetic import generate
from vhd.tracking import finish_runs

wandb = pytest.importorskip("wandb", reason="the `wandb` extra is part of `make test`'s setup")
from wandb.proto import wandb_internal_pb2  # noqa: E402  (only with the extra)

REPO = Path(__file__).resolve().parents[1]
WANDB_CONFIG = REPO / "configs" / "loggers" / "wandb.yaml"
BLOCK = 32768  # the .wandb log is a LevelDB-style log: 32 KiB blocks of 7-byte-headed chunks


def records(path: Path) -> Iterator[Any]:
    """The protobuf ``Record``s of a ``.wandb`` file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    position, chunks = 7, []
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left < 7 or (kind == 0 and length == 0):  # block padding
            position += left
            continue
        chunks.append(data[position + 7 : position + 7 + length])
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


class OfflineRun:
    """What one offline run folder (``<run>/wandb/offline-run-*``) recorded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (log,) = folder.glob("run-*.wandb")
        self.records = list(records(log))
        self.config: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        for record in self.of("run"):  # the run's first record, then its updates
            self.name, self.tags = record.run.display_name, list(record.run.tags)
            self.started = (record.run.start_time.seconds, record.run.start_time.nanos)
        for record in self.of("config"):
            self.config.update(self.items(record.config.update))
        for record in self.of("history"):
            self.history.append(self.items(record.history.item))

    def of(self, kind: str) -> list[Any]:
        return [record for record in self.records if record.WhichOneof("record_type") == kind]

    @staticmethod
    def items(entries: Any) -> dict[str, Any]:
        return {
            entry.key or "/".join(entry.nested_key): json.loads(entry.value_json)
            for entry in entries
        }

    def metric(self, key: str) -> list[float]:
        return [row[key] for row in self.history if key in row]

    def metrics(self) -> dict[str, list[float]]:
        return {key: self.metric(key) for row in self.history for key in row}

    def table(self, key: str) -> list[list[Any]]:
        """The rows of the table last logged under ``key`` (files ``<key>_<step>_<hash>``)."""
        paths = (self.folder / "files" / "media" / "table").glob(f"{key}_*.table.json")
        latest = max(paths, key=lambda path: int(path.name.split("_")[-2]))
        return json.loads(latest.read_text())["data"]

    def assert_finished_cleanly(self) -> None:
        (exit_record,) = self.of("exit")
        assert exit_record.exit.exit_code == 0
        debug = (self.folder / "logs" / "debug.log").read_text().splitlines()
        assert not [line for line in debug if line.split()[2:3] in (["ERROR"], ["CRITICAL"])]
        internal = (self.folder / "logs" / "debug-internal.log").read_text().splitlines()
        assert not [line for line in internal if json.loads(line)["level"] == "ERROR"]


def offline_runs(run_dir: Path) -> list[OfflineRun]:
    """The offline runs under ``run_dir``, oldest first."""
    runs = [OfflineRun(folder) for folder in run_dir.glob("wandb/offline-run-*")]
    return sorted(runs, key=lambda run: run.started)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """W&B offline and quiet, its caches in ``tmp_path``; no WANDB_DIR: runs find their folder."""
    homes = ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env |= {name: str(tmp_path / "wandb-home" / name) for name in homes}
    monkeypatch.delenv("WANDB_DIR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def last_csv_value(run_dir: Path, key: str) -> float:
    (log,) = run_dir.glob("logs/version_*/metrics.csv")
    header, *rows = (line.split(",") for line in log.read_text().splitlines())
    values = [row[header.index(key)] for row in rows if row[header.index(key)]]
    return float(values[-1])


def wandb_args(data_root: Path, run_dir: Path) -> list[str]:
    """The baseline on ``data_root`` with W&B; the run folder is given by
    ``--trainer.default_root_dir`` alone (the config's CSV logger says ``runs/...``), and the
    W&B run and the CSV log must follow it."""
    args = [arg for arg in overrides(data_root, run_dir) if "logger.init_args" not in arg]
    return [*args, "--config", str(WANDB_CONFIG)]


def vhd_fit(cwd: Path, env: dict[str, str], *args: str) -> None:
    """``vhd fit`` as its own process: the run must finish when the command exits."""
    command = [sys.executable, "-m", "vhd.cli", "fit", *args]
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (cwd / "runs").exists(), "something ignored the run folder"


def test_fit_test_and_predict_record_finished_runs_in_the_run_folder(
    tiny_moments: Path, tmp_path: Path, offline: dict[str, str]
) -> None:
    run_dir = tmp_path / "run"
    args = wandb_args(tiny_moments, run_dir)
    vhd_fit(tmp_path, offline, *args, "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1")
    (fitted,) = offline_runs(run_dir)

    assert fitted.name == "baseline_synthetic"  # the first --config's name
    assert fitted.tags == ["SimilarityBaseline", "qvhighlights"]
    config = fitted.config
    assert config["trainer"]["default_root_dir"] == str(run_dir)
    assert config["trainer"]["max_epochs"] == 2
    assert config["model"]["class_path"] == "vhd.models.SimilarityBaseline"
    assert config["data"]["init_args"]["data_root"] == str(tiny_moments)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True)
    assert config["git"]["commit"] == head.stdout.decode().strip()
    assert isinstance(config["git"]["dirty"], bool)
    assert "lr" not in config  # Lightning's flat hparams do not repeat the model's config

    losses, maps = fitted.metric("train/loss"), fitted.metric("val/MR-full-mAP")
    assert len(losses) >= 2 and len(maps) == 2  # every step logged, both validations
    assert maps[-1] == pytest.approx(last_csv_value(run_dir, "val/MR-full-mAP"))  # CSV kept
    rows = {metric: value for split, metric, value in fitted.table("val/table") if split == "val"}
    assert rows["MR-full-mAP"] == pytest.approx(maps[-1])
    assert {"MR-full-R1@0.7", "HL-min-VeryGood-mAP"} <= set(rows)
    fitted.assert_finished_cleanly()

    # Readable without the binary log, as an online run's files are.
    files = fitted.folder / "files"
    readable = yaml.safe_load((files / "config.yaml").read_text())
    assert readable["trainer"]["value"] == config["trainer"]
    summary = json.loads((files / "wandb-summary.json").read_text())
    assert summary["val/MR-full-mAP"] == pytest.approx(maps[-1])

    # `vhd test`, then `vhd predict` in this process: one run each, each finished.
    ckpt = f"--ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}"
    main(["test", *args, ckpt])
    main(["predict", *args, ckpt, "--name=submitted"])
    finish_runs()
    _, tested, predicted = offline_runs(run_dir)
    logged = {
        key.removeprefix("test/"): values[-1]
        for key, values in tested.metrics().items()
        if key.startswith("test/") and not key.startswith("test/table")
    }
    table = {metric: value for split, metric, value in tested.table("test/table")}
    assert table == pytest.approx(logged) and "MR-full-mAP" in table
    assert predicted.name == "submitted"
    (artifact,) = [record.artifact for record in predicted.of("artifact")]
    assert (artifact.type, artifact.name) == ("submission", "submitted-hl_test_submission")
    (entry,) = artifact.manifest.contents
    submission = (run_dir / "hl_test_submission.jsonl").read_bytes()
    assert entry.path == "hl_test_submission.jsonl"
    assert entry.digest == base64.b64encode(hashlib.md5(submission).digest()).decode()
    for run in (tested, predicted):
        run.assert_finished_cleanly()


def test_domains_log_each_domain_and_the_table(tmp_path: Path, offline: dict[str, str]) -> None:
    data = generate("highlights", tmp_path / "data", seed=0, size="tiny", style="youtube")
    chosen = list(json.loads((data / "splits.json").read_text()))[:2]
    root = tmp_path / "domains"
    code = main(
        [
            "domains", "--config", str(REPO / "configs" / "hpcl_youtube.yaml"),
            "--domains", *chosen, "--run_root", str(root), "--",
            *data_args(data), *SMALL_MODEL, "--trainer.max_epochs=1",
            "--config", str(WANDB_CONFIG),
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((root / "domains.json").read_text())
    metric = summary["metric"]
    for domain in chosen:  # every domain its own finished run, in its own folder
        (run,) = offline_runs(root / domain)
        assert run.name == "hpcl_youtube" and run.tags == ["HPCL", "youtube", domain]
        assert run.config["data"]["init_args"]["domain"] == domain
        assert run.metric(metric)[-1] == pytest.approx(summary["domains"][domain][metric])
        evaluated = {name: value for _, name, value in run.table("val/table")}  # `validate`'s
        assert evaluated[metric.removeprefix("val/")] == pytest.approx(run.metric(metric)[-1])
        run.assert_finished_cleanly()
    (table_run,) = offline_runs(root)
    assert table_run.name == "hpcl_youtube-domains"
    names, values = zip(*table_run.table("domains"), strict=True)
    assert names == (*chosen, "average")
    expected = [summary["domains"][domain][metric] for domain in chosen]
    assert values == pytest.approx((*expected, summary["average"]))
    assert table_run.metric(f"{metric}/average") == [pytest.approx(summary["average"])]
    table_run.assert_finished_cleanly()


def test_under_ddp_only_rank_zero_logs(
    tiny_moments: Path, tmp_path: Path, offline: dict[str, str]
) -> None:
    run_dir = tmp_path / "run"
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.max_epochs=1"]
    # about logging, not DDP's gradient checks (the baseline leaves some parameters unused)
    ddp += ["--trainer.strategy=ddp", "--trainer.log_every_n_steps=1"]
    vhd_fit(tmp_path, offline, *wandb_args(tiny_moments, run_dir), *ddp)
    (run,) = offline_runs(run_dir)  # one run: the second process started none
    assert str(run.config["trainer"]["devices"]) == "2"
    assert len(run.metric("val/MR-full-mAP")) == 1 and run.metric("train/loss")
    run.assert_finished_cleanly()
