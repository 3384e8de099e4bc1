"""``Highlighter``: a video file and a trained checkpoint in, a ``HighlightResult`` out.

    from vhd import Highlighter
    h = Highlighter.from_checkpoint("runs/hpcl_youtube/checkpoints/best.ckpt")
    r = h("video.mp4")                      # VideoLights: h("video.mp4", query="...")
    r.moments, r.saliency, r.times; r.plot("video.png"); r.write_reel("reel.mp4")

The features are extracted with the recipes and clip length the checkpoint was trained on,
through ``vhd extract``'s code, into a cache folder (a rerun on the same file reuses them), and
assembled exactly as the training datamodule assembled them (folder order, normalisation,
temporal endpoint columns). ``vhd highlight`` and ``vhd app`` are thin shells over this class.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vhd.datamodules.collate import collate_items
from vhd.datamodules.features import l2_normalize
from vhd.datamodules.targets import temporal_endpoint_features
from vhd.extract.decode import VideoError, probe
from vhd.extract.manifest import ManifestError, open_manifest, recipe_entry
from vhd.extract.recipes import ExtractOptions, Recipe, recipe_class
from vhd.extract.run import Extractor, VideoJob
from vhd.extract.weights import WeightsError, resolve_weights, sha256
from vhd.highlight.checkpoint import TrainedModel, load_trained
from vhd.highlight.result import HighlightResult
from vhd.highlight.windows import (
    average_saliency,
    moments_from_saliency,
    temporal_nms,
    window_starts,
)
from vhd.launch.errors import UserError

log = logging.getLogger("vhd.highlight")
WINDOWS_PER_BATCH = 16
# video folders a datamodule reads when its video_feature_dirs is null
DEFAULT_VIDEO_FOLDERS = {"MomentDataModule": ["slowfast_features", "clip_features"]}


class Highlighter:
    """Scores videos with one trained model; see the module docstring."""

    def __init__(
        self,
        trained: TrainedModel,
        device: str = "cpu",
        weights: dict[str, Path] | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.trained = trained
        self.device = torch.device(device)
        self.model = trained.model.to(self.device).eval()
        self.method = trained.method
        self.clip_len = trained.clip_len
        self.given_weights = dict(weights or {})
        self._temporary = None if cache_dir else tempfile.TemporaryDirectory(prefix="vhd_")
        self.cache_dir = Path(cache_dir or self._temporary.name)  # type: ignore[union-attr]
        self.recipes: dict[str, Recipe] = {}
        self.timings = {"extract": 0.0, "model": 0.0}
        dims = self.model.input_dims()  # in eval mode: exactly what inference reads
        self.needs_query = "query" in dims
        self.uses_audio = "audio" in dims
        data = trained.data
        self.video_folders = list(
            data.get("video_feature_dirs")
            or DEFAULT_VIDEO_FOLDERS.get(trained.data_class, ["video_features"])
        )
        audio = data.get("audio_feature_dirs")
        self.audio_folders = list(audio) if audio is not None else ["audio_features"]
        text = data.get("text_feature_dir") or []
        self.text_folders = [text] if isinstance(text, str) else list(text)
        self.window = data.get("max_v_l") if self.method != "RASL" else None
        self._check_folders()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        *,
        recipe: list[str] | None = None,
        clip_len: float | None = None,
        weights: dict[str, Path] | None = None,
        cache_dir: str | Path | None = None,
    ) -> Highlighter:
        """``recipe`` / ``clip_len``: only for checkpoints trained without an extraction
        manifest; ``weights``: recipe weight files (as ``vhd extract --weights``)."""
        return cls(load_trained(path, recipe, clip_len), device, weights, cache_dir)

    # -- features ----------------------------------------------------------------------------
    def _outputs(self) -> dict[str, tuple[str, str]]:
        """folder -> (recipe, modality) for every folder the checkpoint's recipes write."""
        found = {}
        for name in self.trained.recipes:
            try:
                cls = recipe_class(name)
            except KeyError as err:
                raise UserError(f"{self.trained.path}: {err.args[0]}") from err
            for output in cls.outputs():
                found[output.folder] = (name, output.modality)
        return found

    def _check_folders(self) -> None:
        outputs = self._outputs()
        needed = list(self.video_folders)
        needed += self.audio_folders if self.uses_audio else []
        needed += self.text_folders if self.needs_query else []
        missing = [folder for folder in needed if folder not in outputs]
        if missing:
            raise UserError(
                f"{self.trained.path} reads the feature folders {needed}, but its recipe(s) "
                f"{self.trained.recipes} write {sorted(outputs)}; pass --recipe with the "
                f"recipe(s) that write {missing} (see vhd extract --list)"
            )
        if self.needs_query and not self.text_folders:
            raise UserError(f"{self.trained.path}: the model reads a query but no text folder")
        # only the recipes that write what inference reads (the training folder may hold more)
        self.active_recipes = sorted({outputs[folder][0] for folder in needed})

    def recipe(self, name: str) -> Recipe:
        if name not in self.recipes:
            cls = recipe_class(name)
            try:
                weights = resolve_weights(name, cls.weight_files, self.given_weights_for(cls))
            except WeightsError as err:
                raise UserError(str(err)) from err
            self._compare_weights(name, weights)
            options = ExtractOptions(self.clip_len, str(self.device), 32, weights)
            try:
                self.recipes[name] = cls(options)
            except ValueError as err:
                raise UserError(str(err)) from err
        return self.recipes[name]

    def given_weights_for(self, cls: type[Recipe]) -> dict[str, Path]:
        return {k: v for k, v in self.given_weights.items() if k in cls.weight_files}

    def _compare_weights(self, name: str, weights: dict[str, Path]) -> None:
        trained = ((self.trained.provenance or {}).get("recipes", {}).get(name) or {}).get(
            "weights"
        ) or {}
        for key, path in weights.items():
            expected = (trained.get(key) or {}).get("sha256")
            if expected and expected != sha256(path):
                log.warning(
                    "%s: weights %s=%s differ from those the training features were made with "
                    "(sha256 %s...); scores may be off",
                    self.trained.path, key, path, expected[:12],
                )  # fmt: skip

    def _extract(self, video: Path) -> tuple[str, dict[str, np.ndarray]]:
        """Cache key and {folder: (clips, dim)} for every folder the checkpoint's recipes write."""
        stat = video.stat()
        digest = hashlib.sha1(f"{video.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        key = f"{video.stem}-{digest.hexdigest()[:10]}"
        arrays: dict[str, np.ndarray] = {}
        for name in self.active_recipes:
            recipe = self.recipe(name)
            entry = recipe_entry(
                {o.folder: {"dim": o.dim, "key": o.key, "modality": o.modality}
                 for o in recipe.outputs()},
                recipe.describe(), {},
            )  # fmt: skip
            try:
                manifest = open_manifest(self.cache_dir, self.clip_len, name, entry)
            except ManifestError as err:
                raise UserError(f"{err}; or remove the feature cache {self.cache_dir}") from err
            extractor = Extractor(recipe, self.cache_dir, manifest, workers=0)
            summary = extractor.run([VideoJob(key, video)])
            if summary.failed:
                raise UserError(f"{video}: {summary.failed[0]['error']}; is it a video file?")
            for output in extractor.media_outputs:
                with np.load(self.cache_dir / output.folder / f"{key}.npz") as archive:
                    arrays[output.folder] = archive["features"]
        return key, arrays

    # -- inputs as the datamodule built them --------------------------------------------------
    def _stack(self, arrays: dict[str, np.ndarray], folders: list[str], normalize: bool):
        parts = [l2_normalize(arrays[f]) if normalize else arrays[f] for f in folders]
        length = min(len(part) for part in parts)
        return np.concatenate([part[:length] for part in parts], axis=1).astype(np.float32)

    def _query_tokens(self, query: str) -> torch.Tensor:
        data = self.trained.data
        parts = []
        for folder in self.text_folders:
            name, _ = self._outputs()[folder]
            tokens = self.recipe(name).text_features(query)
            assert tokens is not None
            tokens = tokens[: data.get("max_q_l")] if data.get("max_q_l") else tokens
            parts.append(l2_normalize(tokens) if data.get("normalize_text", True) else tokens)
        length = min(len(part) for part in parts)
        joined = np.concatenate([part[:length] for part in parts], axis=1)
        return torch.from_numpy(joined.astype(np.float32))

    def _check_dims(self, item: dict[str, Any]) -> None:
        for key, dim in self.model.input_dims().items():
            if key in item and item[key].shape[-1] != dim:
                raise UserError(
                    f"{self.trained.path}: the model reads {key} of width {dim}, the recipe(s) "
                    f"{self.active_recipes} give {item[key].shape[-1]}; pass the --recipe the "
                    "model was trained on"
                )

    # -- scoring ------------------------------------------------------------------------------
    def __call__(self, video: str | Path, query: str | None = None) -> HighlightResult:
        video = Path(video)
        notes: list[str] = []
        if self.needs_query and not (query or "").strip():
            raise UserError(
                f"{self.method} finds moments for a text query: pass --query TEXT (it is empty)"
            )
        if not self.needs_query and query:
            notes.append(f"{self.method} takes no query; the query was ignored")
            log.warning("%s: %s", video, notes[-1])
            query = None
        if not video.is_file():
            raise UserError(f"{video}: no such file")
        try:
            info = probe(video)
        except VideoError as err:
            raise UserError(f"{video}: {err}; is it a video file?") from err
        if info.duration < self.clip_len:
            raise UserError(
                f"{video} lasts {info.duration:.2f} s, less than one {self.clip_len:g} s clip of "
                "this model; there is nothing to rank"
            )
        started = time.perf_counter()
        vid, arrays = self._extract(video)
        self.timings["extract"] += time.perf_counter() - started
        started = time.perf_counter()
        saliency, moments = self._score(vid, arrays, info.duration, query)
        self.timings["model"] += time.perf_counter() - started
        return HighlightResult(
            video=video, vid=video.stem, method=self.method, checkpoint=str(self.trained.path),
            recipes=list(self.active_recipes), clip_len=self.clip_len, duration=info.duration,
            times=np.arange(len(saliency)) * self.clip_len, saliency=saliency,
            moments=moments, query=query, notes=notes,
        )  # fmt: skip

    def _score(
        self, vid: str, arrays: dict[str, np.ndarray], duration: float, query: str | None
    ) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
        data = self.trained.data
        video = self._stack(arrays, self.video_folders, bool(data.get("normalize_video", False)))
        audio = None
        if self.uses_audio:
            audio = self._stack(arrays, self.audio_folders, bool(data.get("normalize_audio")))
        num_clips = min(len(video), len(audio) if audio is not None else len(video))
        tokens = self._query_tokens(query) if self.needs_query and query else None
        items = []
        for index, start in enumerate(window_starts(num_clips, self.window)):
            rows = video[start : start + (self.window or num_clips)]
            if data.get("use_tef"):
                rows = np.concatenate([rows, temporal_endpoint_features(len(rows))], axis=1)
            item: dict[str, Any] = {"video": torch.from_numpy(np.ascontiguousarray(rows))}
            if audio is not None:
                item["audio"] = torch.from_numpy(audio[start : start + len(rows)].copy())
            if tokens is not None:
                item["query"] = tokens
            item["meta"] = {
                "qid": vid, "vid": vid, "index": index, "query": query or "",
                "duration": min(len(rows) * self.clip_len, duration - start * self.clip_len),
                "clip_len": self.clip_len, "num_clips": len(rows), "window_start": start,
            }  # fmt: skip
            self._check_dims(item)
            items.append(item)
        saliency_parts, moments = [], []
        for first in range(0, len(items), WINDOWS_PER_BATCH):
            chunk = items[first : first + WINDOWS_PER_BATCH]
            batch = _to_device(collate_items(chunk), self.device)
            with torch.inference_mode():
                predictions = self.model.predict_batch(batch)
            for item, prediction in zip(chunk, predictions, strict=True):
                start = item["meta"]["window_start"]
                scores = np.asarray(prediction["pred_saliency_scores"], dtype=np.float64)
                saliency_parts.append((start, scores))
                offset = start * self.clip_len
                for begin, end, score in prediction.get("pred_relevant_windows", []):
                    moments.append((offset + begin, min(offset + end, duration), float(score)))
        saliency = average_saliency(saliency_parts, num_clips)
        if moments:
            return saliency, temporal_nms(moments)
        return saliency, moments_from_saliency(saliency, self.clip_len, duration)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
