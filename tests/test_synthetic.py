"""The embedded synthetic data: the real formats, determinism, caching, and planted structure."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vhd.datamodules.synthetic import (
    SynthConfig,
    World,
    ensure_synthetic,
    generate,
    main,
    resolve_config,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QVHIGHLIGHTS_FIELDS = {
    "qid", "query", "duration", "vid", "relevant_clip_ids", "saliency_scores", "relevant_windows",
}  # fmt: skip
YOUTUBE_FIELDS = {
    "qid", "query", "duration", "vid", "relevant_clip_ids", "relevant_windows", "label", "domain",
    "frames", "fps", "clip", "match",
}  # fmt: skip
TVSUM_FIELDS = {
    "qid", "query", "duration", "vid", "relevant_clip_ids", "relevant_windows", "label", "domain",
}  # fmt: skip


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def load(path: Path, key: str = "features") -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return archive[key]


def assert_like_real(record: dict, fields: set[str], real_file: str) -> None:
    """Exactly the real format's fields, each of the real record's JSON type (when available)."""
    assert set(record) == fields
    path = SHARED_DATA / real_file
    if path.is_file():  # the real annotations sit beside the clone; a user's clone lacks them
        real = json.loads(path.read_text().splitlines()[0])
        assert set(real) == fields
        assert {key: type(value) for key, value in record.items()} == {
            key: type(value) for key, value in real.items()
        }


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    hits = labels[np.argsort(-scores)]
    return float((np.cumsum(hits) / np.arange(1, len(hits) + 1))[hits == 1].mean())


@pytest.fixture(scope="module")
def moments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "moments"
    return generate("moments", out, seed=3, size="tiny", num_videos=40, num_clips=75)


@pytest.fixture(scope="module")
def youtube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "youtube"
    return generate("highlights", out, seed=3, size="tiny", videos_per_domain=10, max_clips=50)


@pytest.fixture(scope="module")
def tvsum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("highlights", tmp_path_factory.mktemp("synth") / "tvsum", size="tiny",
                    style="tvsum")  # fmt: skip


@pytest.fixture(scope="module")
def world() -> World:
    return World(resolve_config("moments"))


# -- formats ---------------------------------------------------------------------------------
def test_moments_are_in_the_qvhighlights_format(moments: Path) -> None:
    splits = {s: jsonl(moments / "annotations" / f"{s}.jsonl") for s in ("train", "val", "test")}
    records = [record for lines in splits.values() for record in lines]
    assert all(splits.values())  # every split labelled, test included
    qids = [record["qid"] for record in records]
    assert len(set(qids)) == len(qids) and all(isinstance(qid, int) for qid in qids)
    vids = [{record["vid"] for record in lines} for lines in splits.values()]
    assert sum(map(len, vids)) == len(set().union(*vids))  # a video sits in one split
    lengths = []
    for record in records:
        assert_like_real(record, QVHIGHLIGHTS_FIELDS, "qvhighlights/highlight_val_release.jsonl")
        assert record["duration"] == 150 and 1 <= len(record["relevant_windows"]) <= 2
        ids = []
        for start, end in record["relevant_windows"]:
            assert isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= 150
            assert start % 2 == 0 and end % 2 == 0  # on clip boundaries
            ids += range(start // 2, end // 2)
            lengths.append(end - start)
        assert record["relevant_clip_ids"] == sorted(ids)
        assert len(record["saliency_scores"]) == len(ids)
        assert all(
            len(row) == 3 and all(isinstance(v, int) and 0 <= v <= 4 for v in row)
            for row in record["saliency_scores"]
        )
        video = load(moments / "video_features" / f"{record['vid']}.npz")
        assert video.shape == (75, 256) and video.dtype == np.float32
        with np.load(moments / "text_features" / f"qid{record['qid']}.npz") as text:
            assert set(text.files) == {"last_hidden_state", "pooler_output"}
            tokens, pooled = text["last_hidden_state"], text["pooler_output"]
        assert 4 <= len(tokens) <= 12 and tokens.shape[1] == 128 and pooled.shape == (128,)
        assert tokens.dtype == pooled.dtype == np.float32
        assert len(tokens) == len(record["query"].split())  # one token per word
    lengths = np.array(lengths)
    assert (
        (lengths <= 10).any() and ((lengths > 10) & (lengths <= 30)).any() and (lengths > 30).any()
    )


def test_highlights_are_in_the_youtube_format(youtube: Path) -> None:
    splits = json.loads((youtube / "splits.json").read_text())
    assert list(splits) == ["dog", "gymnastics", "parkour"]
    assert all(set(split) == {"train", "val"} for split in splits.values())
    for name, split in (("youtube_train.jsonl", "train"), ("youtube_valid.jsonl", "val")):
        for record in jsonl(youtube / name):
            assert_like_real(record, YOUTUBE_FIELDS, "youtube_highlights/youtube_train.jsonl")
            assert record["qid"] == record["vid"] and record["query"] == record["domain"]
            assert record["vid"] in splits[record["domain"]][split]
            labels = np.asarray(record["label"])
            video = load(youtube / "video_features" / f"{record['vid']}.npz")
            audio = load(youtube / "audio_features" / f"{record['vid']}.npz")
            assert labels.shape == (len(video), 1) and set(np.unique(labels)) <= {0, 1}
            assert video.shape[1] == 256 and audio.shape == (len(video), 64)
            assert video.dtype == audio.dtype == np.float32
            assert len(record["clip"]) == len(video) == len(record["match"])
            assert record["duration"] == pytest.approx(len(video) * 2.0)
            assert record["duration"] == pytest.approx(record["frames"] / record["fps"])
            assert [m == 1 for m in record["match"]] == [bool(v) for v in labels[:, 0]]


def test_highlights_are_in_the_tvsum_format(tvsum: Path, tmp_path: Path) -> None:
    splits = json.loads((tvsum / "splits.json").read_text())
    assert list(splits) == ["BK", "BT", "DS"]
    assert all(len(s["train"]) == 4 and len(s["val"]) == 1 for s in splits.values())
    records = jsonl(tvsum / "tvsum_train.jsonl") + jsonl(tvsum / "tvsum_val.jsonl")
    assert len(records) == 15
    for record in records:
        assert_like_real(record, TVSUM_FIELDS, "tvsum/tvsum_train.jsonl")
        scores = np.asarray(record["label"])
        video = load(tvsum / "video_features" / f"{record['vid']}.npz")
        assert scores.shape == (len(video), 20) and set(np.unique(scores)) <= {1, 2, 3, 4, 5}
        assert record["duration"] == 2 * len(video)
    named = generate("highlights", tmp_path / "t", size="tiny", style="tvsum", domains=["x", "y"])
    assert list(json.loads((named / "splits.json").read_text())) == ["x", "y"]


def test_unlabeled_has_features_and_no_labels(tmp_path: Path) -> None:
    out = generate("unlabeled", tmp_path / "u", size="tiny")
    rows = jsonl(out / "videos.jsonl")
    assert all(set(row) == {"vid", "duration"} for row in rows) and len(rows) == 8
    for row in rows:
        video = load(out / "video_features" / f"{row['vid']}.npz")
        audio = load(out / "audio_features" / f"{row['vid']}.npz")
        assert video.shape[1] == 256 and audio.shape == (len(video), 64)
        assert row["duration"] == 2 * len(video)
    assert {p.name for p in out.iterdir()} == {
        "videos.jsonl", "video_features", "audio_features", "synth.json",
    }  # fmt: skip


# -- determinism, presets, caching ------------------------------------------------------------
def snapshot(root: Path) -> dict[str, object]:
    """Every jsonl/json text and every array of a dataset (npz bytes carry zip timestamps)."""
    files: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix in (".jsonl", ".json") and path.name != "synth.json":
            files[str(path.relative_to(root))] = path.read_text()
        elif path.suffix == ".npz":
            with np.load(path) as archive:
                for key in archive.files:
                    files[f"{path.relative_to(root)}:{key}"] = archive[key]
    return files


def same(a: dict[str, object], b: dict[str, object]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "options"),
    [("moments", {}), ("highlights", {}), ("highlights", {"style": "tvsum"}), ("unlabeled", {})],
)
def test_deterministic_for_a_seed(tmp_path: Path, kind: str, options: dict) -> None:
    first = snapshot(generate(kind, tmp_path / "a", seed=5, size="tiny", **options))
    assert same(first, snapshot(generate(kind, tmp_path / "b", seed=5, size="tiny", **options)))
    other = snapshot(generate(kind, tmp_path / "c", seed=6, size="tiny", **options))
    assert first.keys() != other.keys() or not any(
        np.array_equal(first[k], other[k])  # type: ignore[arg-type]
        for k in first
        if k.endswith(":features")
    )


def test_presets(tmp_path: Path) -> None:
    quick = resolve_config("moments", "quickstart")
    queries = quick.num_videos * quick.queries_per_video
    assert (quick.num_clips, quick.clip_len) == (75, 2.0)
    assert [round(queries * f) for f in quick.split_fractions] == [240, 60, 60]
    full = resolve_config("moments", "full")
    assert [round(full.num_videos * full.queries_per_video * f) for f in full.split_fractions][
        :2
    ] == [7000, 1500]
    assert resolve_config("highlights", "full", style="tvsum").num_domains is None  # all 10
    with pytest.raises(ValueError, match="unknown synthetic parameters"):
        resolve_config("moments", "tiny", no_such=1)
    with pytest.raises(ValueError, match="split_fractions"):
        resolve_config("moments", "tiny", split_fractions=[0.5, 0.1])
    started = time.perf_counter()
    for kind in ("moments", "highlights", "unlabeled"):
        generate(kind, tmp_path / kind, size="tiny")
    assert time.perf_counter() - started < 5  # about 0.1 s on a laptop core


def test_ensure_synthetic_reuses_and_regenerates(tmp_path: Path) -> None:
    out = ensure_synthetic("unlabeled", tmp_path / "u", seed=0, size="tiny")
    stamp = (out / "synth.json").stat().st_mtime_ns
    assert ensure_synthetic("unlabeled", out, seed=0, size="tiny") == out
    assert (out / "synth.json").stat().st_mtime_ns == stamp
    (out / ".feature_cache").mkdir()  # a datamodule's cache of the old data must go with it
    ensure_synthetic("unlabeled", out, seed=0, size="tiny", noise=2.0)
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["kind"] == "unlabeled" and manifest["params"]["noise"] == 2.0
    assert manifest["format_version"] >= 1 and not (out / ".feature_cache").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u"]  # no staging folders left


def test_ensure_synthetic_regenerates_data_of_other_generator_code(tmp_path: Path) -> None:
    """Same parameters, older generator: the cached folder would silently hold other data."""
    out = ensure_synthetic("unlabeled", tmp_path / "u", seed=0, size="tiny")
    manifest = json.loads((out / "synth.json").read_text())
    (out / "synth.json").write_text(json.dumps({**manifest, "generator": "0" * 16}))
    ensure_synthetic("unlabeled", out, seed=0, size="tiny")
    assert json.loads((out / "synth.json").read_text()) == manifest


def test_ensure_synthetic_is_safe_for_concurrent_callers(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ensure_synthetic("moments", tmp_path / "m", seed=1, size="tiny")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    records = jsonl(tmp_path / "m" / "annotations" / "train.jsonl")
    assert all((tmp_path / "m" / "text_features" / f"qid{r['qid']}.npz").is_file() for r in records)


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "youtube_train.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="not a synthetic dataset"):
        ensure_synthetic("highlights", tmp_path / "real", size="tiny")
    assert (tmp_path / "real" / "youtube_train.jsonl").is_file()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--kind", "moments", "--out", str(tmp_path / "d"), "--size", "tiny"]
    assert main([*args, "--seed", "2", "--set", "num_clips=20", "text_noise=0.1"]) == 0
    assert "wrote moments data" in capsys.readouterr().out
    assert jsonl(tmp_path / "d" / "annotations" / "train.jsonl")[0]["duration"] == 40
    manifest = json.loads((tmp_path / "d" / "synth.json").read_text())
    assert (manifest["seed"], manifest["params"]["text_noise"]) == (2, 0.1)
    tv = [
        "--kind",
        "highlights",
        "--style",
        "tvsum",
        "--out",
        str(tmp_path / "t"),
        "--size",
        "tiny",
    ]
    assert main(tv) == 0 and (tmp_path / "t" / "tvsum_val.jsonl").is_file()
    for bad in (["--set", "no_such=1"], ["--set", "num_clips"], ["--size", "huge"]):
        with pytest.raises(SystemExit):
            main([*args, *bad])


# -- planted, learnable structure -------------------------------------------------------------
def test_queries_point_at_their_windows(moments: Path, world: World) -> None:
    """Query words name an event; its windows hold clips like that event's prototype."""
    gaps, decoded = [], []
    vocabulary = list(world.word_vectors)
    words = np.stack(list(world.word_vectors.values()))
    for record in jsonl(moments / "annotations" / "train.jsonl"):
        query = record["query"].split()
        event = next(i for i, (v, n) in enumerate(world.event_words) if v in query and n in query)
        video = load(moments / "video_features" / f"{record['vid']}.npz")
        similarity = video @ world.event_video[event] / np.linalg.norm(video, axis=1) / 16
        inside = np.zeros(len(video), dtype=bool)
        inside[record["relevant_clip_ids"]] = True
        gaps.append(similarity[inside].mean() - similarity[~inside].mean())
        tokens = load(moments / "text_features" / f"qid{record['qid']}.npz", "last_hidden_state")
        decoded.append([vocabulary[i] for i in np.argmax(tokens @ words.T, axis=1)] == query)
    assert np.min(gaps) > 0.2  # per-clip cosine ~0.5 inside, ~0 outside: learnable, noisy
    assert np.mean(decoded) > 0.9


def highlight_scores(root: Path, world: World, files: list[str]):
    """Per video: labels, visual highlight-subspace energy, audio signature one clip earlier."""
    for record in [r for name in files for r in jsonl(root / name)]:
        labels = np.asarray(record["label"])[:, 0]
        video = load(root / "video_features" / f"{record['vid']}.npz")
        audio = load(root / "audio_features" / f"{record['vid']}.npz")
        visual = np.linalg.norm(video[:, world.highlight_dims], axis=1)
        echo = audio @ world.highlight_audio
        yield labels, visual, np.r_[echo[1:], echo[-1]]  # undo the 1-clip lag


def test_highlights_are_rare_distinct_and_audio_adds_signal(youtube: Path, world: World) -> None:
    files = ["youtube_train.jsonl", "youtube_valid.jsonl"]
    videos = list(highlight_scores(youtube, world, files))
    labels = np.concatenate([v[0] for v in videos])
    visual = np.concatenate([v[1] for v in videos])
    assert 0.08 < labels.mean() < 0.3
    assert visual[labels == 1].mean() > 1.3 * visual[labels == 0].mean()
    assert np.mean(visual[labels == 0] > np.median(visual[labels == 1])) > 0.02  # decoys
    zscore = [(v - visual.mean()) / visual.std() for v in (v[1] for v in videos)]
    echoes = np.concatenate([v[2] for v in videos])
    fused = [
        z + (e - echoes.mean()) / echoes.std() for z, (_, _, e) in zip(zscore, videos, strict=True)
    ]
    video_only = np.mean([average_precision(v[0], v[1]) for v in videos])
    with_audio = np.mean([average_precision(v[0], f) for v, f in zip(videos, fused, strict=True)])
    chance = np.mean([v[0].mean() for v in videos])
    assert with_audio > video_only + 0.08 and video_only > chance + 0.2
    raw = np.concatenate([np.r_[v[2][-1], v[2][:-1]] for v in videos])  # re-apply the lag
    lagged = np.concatenate([np.r_[0, v[0][:-1]] for v in videos])
    assert np.corrcoef(raw, lagged)[0, 1] > np.corrcoef(raw, labels)[0, 1] + 0.1


def test_unlabeled_pretraining_can_find_highlights(tmp_path: Path, youtube: Path) -> None:
    """A label-free model of the unlabeled videos (PCA) flags highlight clips: they are rare and
    lie off the common subspace, so their reconstruction error is large."""
    corpus = generate("unlabeled", tmp_path / "u", size="tiny", num_videos=60)
    clips = np.concatenate([load(p) for p in sorted((corpus / "video_features").glob("*.npz"))])
    mean = clips.mean(axis=0)
    basis = np.linalg.svd(clips - mean, full_matrices=False)[2][:8]
    gains = []
    for record in jsonl(youtube / "youtube_valid.jsonl"):
        video = load(youtube / "video_features" / f"{record['vid']}.npz") - mean
        error = np.linalg.norm(video - video @ basis.T @ basis, axis=1)
        labels = np.asarray(record["label"])[:, 0]
        gains.append(average_precision(labels, error) - labels.mean())
    assert np.mean(gains) > 0.2


def test_one_world_for_every_kind(tmp_path: Path, world: World) -> None:
    for config in (
        resolve_config("highlights", "full", style="tvsum"),
        resolve_config("unlabeled", "tiny"),
        SynthConfig(num_domains=2, num_videos=3),
    ):
        other = World(config)
        np.testing.assert_array_equal(other.event_video, world.event_video)
        np.testing.assert_array_equal(other.highlight_video(4), world.highlight_video(4))
        np.testing.assert_array_equal(other.word_vectors["onion"], world.word_vectors["onion"])
        np.testing.assert_array_equal(other.highlight_audio, world.highlight_audio)
    elsewhere = World(resolve_config("moments", world_seed=1))
    assert not np.allclose(elsewhere.event_video, world.event_video)
    # unlabeled clips are made of the same prototypes: each matches one of them
    out = generate("unlabeled", tmp_path / "u", size="tiny")
    prototypes = np.concatenate([world.event_video, *map(world.highlight_video, range(10))])
    for candidates, expected in ((prototypes, 0.3), (elsewhere.event_video, None)):
        unit = candidates / np.linalg.norm(candidates, axis=1, keepdims=True)
        clips = np.concatenate([load(p) for p in (out / "video_features").glob("*.npz")])
        best = np.median(np.max(clips @ unit.T, axis=1) / np.linalg.norm(clips, axis=1))
        assert best > expected if expected else best < 0.3


@pytest.mark.parametrize("num_clips", [4, 7, 12, 30, 75, 200])
def test_planted_segments_cover_the_video(num_clips: int) -> None:
    from vhd.datamodules.synthetic.moments import plant

    config = resolve_config("moments", num_clips=num_clips, queries_per_video=3)
    for seed in range(40):
        rng = np.random.default_rng(seed)
        events = rng.choice(config.num_events, size=3, replace=False)
        segments = plant(rng, config, events, rng.integers(3, size=3).tolist())
        assert [s[1] for s in segments] == [0, *(s[2] for s in segments[:-1])]
        assert segments[-1][2] == num_clips and all(s[1] < s[2] for s in segments)
        assert all(a[0] != b[0] for a, b in itertools.pairwise(segments))
        counts = [sum(s[0] == event for s in segments) for event in events]
        assert all(1 <= count <= 2 for count in counts)
