"""The feature store: safe reading, header scans, the memory and memory-map caches, workers."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vhd.datamodules import cache as cache_module
from vhd.datamodules.features import (
    FeatureError,
    FeatureFolder,
    FeatureStore,
    l2_normalize,
    load_concatenated,
    pool_and_interpolate,
)


def write(folder: Path, arrays: dict[str, np.ndarray], key: str = "features") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.savez(folder / f"{name}.npz", **{key: array})


@pytest.fixture
def folder(tmp_path: Path) -> FeatureFolder:
    rng = np.random.default_rng(0)
    write(tmp_path / "video", {f"v{i}": rng.normal(size=(5 + i, 4)) for i in range(6)})
    return FeatureFolder(tmp_path / "video")


def test_reads_npz_npy_and_one_dimensional_arrays(tmp_path: Path) -> None:
    write(tmp_path, {"a": np.ones((3, 2))})
    np.save(tmp_path / "b.npy", np.arange(4.0))
    np.savez_compressed(tmp_path / "c.npz", features=np.zeros((7, 2)))
    folder = FeatureFolder(tmp_path)
    assert folder.load("a").dtype == np.float32 and folder.load("a").shape == (3, 2)
    assert folder.load("b").shape == (1, 4)  # a pooled vector is one row
    assert folder.shape("a") == (3, 2) and folder.shape("b") == (1, 4)
    assert folder.shape("c") == (7, 2)  # compressed archives: header only, still no full read


def test_every_bad_file_is_named_with_its_fix(tmp_path: Path) -> None:
    write(tmp_path, {"nan": np.array([[1.0, np.nan]]), "inf": np.array([[np.inf, 0.0]])})
    write(tmp_path, {"wrong_key": np.ones((2, 2))}, key="pooler_output")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip archive")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    folder = FeatureFolder(tmp_path)
    with pytest.raises(FeatureError, match=r"nan\.npz contains NaN or inf values \(1 of 1 rows\)"):
        folder.load("nan")
    with pytest.raises(FeatureError, match=r"inf\.npz contains NaN or inf"):
        folder.load("inf")
    with pytest.raises(FeatureError, match=r"wrong_key\.npz has keys \['pooler_output'\]"):
        folder.load("wrong_key")
    with pytest.raises(FeatureError, match=r"wrong_key\.npz has keys \['pooler_output'\]"):
        folder.shape("wrong_key")
    for read in (folder.load, folder.shape):
        with pytest.raises(FeatureError, match=r"corrupt\.npz cannot be read .*re-extract"):
            read("corrupt")
        with pytest.raises(FeatureError, match=r"empty\.npy: expected a non-empty"):
            read("empty")
    with pytest.raises(FeatureError, match=r"pickled\.npy cannot be read"):  # allow_pickle=False
        folder.load("pickled")
    with pytest.raises(FeatureError, match=r"no feature file for 'gone': looked for .*gone"):
        folder.load("gone")


def test_scan_lists_missing_names_and_rejects_mixed_dimensions(folder: FeatureFolder) -> None:
    store = FeatureStore(folder)
    scan = store.scan(["v0", "v3", "nope", "v0"])
    assert scan.lengths == {"v0": 5, "v3": 8} and scan.missing == ["nope"] and store.dim == 4
    write(folder.folder, {"odd": np.ones((2, 9))})
    with pytest.raises(FeatureError, match=r"odd\.npz has feature dim 9, but .*v0\.npz has 4"):
        store.scan(["v0", "odd"])


@pytest.mark.parametrize("mode", ["memory", "mmap"])
def test_caches_return_the_files_arrays(folder: FeatureFolder, tmp_path: Path, mode) -> None:
    names = [f"v{i}" for i in range(6)]
    store = FeatureStore(folder, mode, tmp_path / "cache")
    store.prepare(store.scan(names).lengths)
    for name in names:
        np.testing.assert_array_equal(store.load(name), folder.load(name))
    store.load("v1")[0, 0] = 123.0  # callers get copies, never views into the cache
    assert store.load("v1")[0, 0] != 123.0
    written = os.listdir(tmp_path / "cache") if (tmp_path / "cache").exists() else []
    assert len(written) == (2 if mode == "mmap" else 0)  # the .npy and its .json index


def test_mmap_cache_is_built_once_and_rebuilt_when_a_file_changes(
    folder: FeatureFolder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"v{i}" for i in range(6)]
    builds = []
    original = cache_module.build_packed
    monkeypatch.setattr(
        cache_module, "build_packed", lambda *a, **k: builds.append(1) or original(*a, **k)
    )
    for _ in range(2):
        store = FeatureStore(folder, "mmap", tmp_path / "cache")
        store.prepare(store.scan(names).lengths)
    assert len(builds) == 1
    write(folder.folder, {"v2": np.full((7, 4), 2.0)})
    os.utime(folder.folder / "v2.npz", ns=(1, 1))  # a different mtime even on coarse clocks
    store = FeatureStore(folder, "mmap", tmp_path / "cache")
    store.prepare(store.scan(names).lengths)
    assert len(builds) == 2 and (store.load("v2") == 2.0).all()


def test_mmap_store_pickles_without_its_data(folder: FeatureFolder, tmp_path: Path) -> None:
    store = FeatureStore(folder, "mmap", tmp_path / "cache")
    store.prepare(store.scan([f"v{i}" for i in range(6)]).lengths)
    store.load("v0")  # opens the map
    clone = pickle.loads(pickle.dumps(store))
    assert clone._packed is not None and clone._packed._array is None
    np.testing.assert_array_equal(clone.load("v4"), folder.load("v4"))


class StoreDataset(Dataset):
    def __init__(self, store: FeatureStore, names: list[str]) -> None:
        self.store, self.names = store, names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.store.load(self.names[index])).sum()


def test_cached_store_works_with_worker_processes(folder: FeatureFolder, tmp_path: Path) -> None:
    names = [f"v{i}" for i in range(6)]
    store = FeatureStore(folder, "mmap", tmp_path / "cache")
    store.prepare(store.scan(names).lengths)
    loader = DataLoader(StoreDataset(store, names), batch_size=2, num_workers=2)
    got = torch.cat(list(loader))
    expected = torch.tensor([folder.load(name).sum() for name in names])
    torch.testing.assert_close(got, expected)


def test_concatenation_normalises_each_type_then_cuts_to_the_shortest(tmp_path: Path) -> None:
    write(tmp_path / "a", {"x": np.full((6, 2), 3.0)})
    write(tmp_path / "b", {"x": np.full((4, 3), -1.0)})
    joined = load_concatenated(
        [FeatureFolder(tmp_path / "a"), FeatureFolder(tmp_path / "b")], "x", 5, normalize=True
    )
    assert joined.shape == (4, 5)
    np.testing.assert_allclose(np.linalg.norm(joined[:, :2], axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0]])), [[0.6, 0.8]], atol=1e-5)


def test_pool_and_interpolate_aligns_audio_to_the_video_length() -> None:
    steps = np.arange(12, dtype=np.float32)[:, None]
    np.testing.assert_allclose(pool_and_interpolate(steps, 12), steps)
    np.testing.assert_allclose(pool_and_interpolate(steps, 4)[:, 0], [1, 4, 7, 10])  # mean of 3
    np.testing.assert_allclose(
        pool_and_interpolate(steps, 6)[:, 0], [0.5, 2.5, 4.5, 6.5, 8.5, 10.5]
    )
    upsampled = pool_and_interpolate(np.array([[0.0], [4.0]]), 4)[:, 0]
    np.testing.assert_allclose(upsampled, [0.0, 1.0, 3.0, 4.0])  # F.interpolate(mode="linear")
    reference = torch.nn.functional.interpolate(
        torch.tensor([[[0.0, 4.0]]]), size=4, mode="linear", align_corners=False
    )
    np.testing.assert_allclose(upsampled, reference[0, 0].numpy())
