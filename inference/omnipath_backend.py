"""The ``omnipath`` backend: coarse pass → MGFE → PGFC re-read → LM, streamed.

One analysis, in coordinate spaces of :mod:`slides.tiling`:

1. coarse tissue tiles over the slide (or ROI) at ``config.coarse_magnification``, features from the store;
2. fuse + FiLM (MGFE) → coarse tokens; the prompt + task query scores them (PGFC);
3. the ``pgfc_top_k`` best coarse tiles are re-read at ``config.fine_magnification``; their fine tiles are
   encoded, FiLMed and scored, and the ``fine_tokens_per_region`` best per region are kept;
4. visual tokens = [task-pooled slide token, coarse overview pooled to fit, fine tokens] ≤ budget;
5. the LM streams the answer; segmentation tasks also get mask polygons in level-0 px.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, GenerationConfig

from inference.analysis import (
    AnalysisRequest,
    AnalysisResult,
    AnalysisStream,
    Region,
    Timings,
    collect_stream,
    start_result,
    stream_generate,
)
from inference.encoders import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, PatchEncoder, compute_dtype
from inference.errors import InferenceError
from inference.extraction import encode_grid, extract_features
from inference.feature_store import FeatureStore
from inference.masks import mask_to_polygons
from inference.modeling_omnipath import COARSE, FINE, OmniPathForConditionalGeneration
from inference.pgfc import pool_to_slots, select_regions
from slides.tiling import TileGrid, tissue_tile_grid

MIN_TISSUE = 0.25
Progress = Callable[[str, int, int], None]


def _mag_key(magnification: float) -> str:
    return f"{magnification:g}x"


def load_omnipath(model_dir: str | Path, device: str = "cpu") -> tuple[OmniPathForConditionalGeneration, object]:
    """Model and tokenizer from a local checkpoint directory; a bad directory is an :class:`InferenceError`."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise InferenceError(f"model directory {model_dir} has no config.json; create one with "
                             "`python -m inference init-tiny DIR` or point at a real OmniPath checkpoint")
    dtype = compute_dtype(device)
    try:
        model, info = OmniPathForConditionalGeneration.from_pretrained(
            model_dir, local_files_only=True, dtype=dtype, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise InferenceError(f"cannot load OmniPath from {model_dir}: {exc}") from exc
    missing = list(info.get("missing_keys", ()))
    if missing or info.get("mismatched_keys"):
        raise InferenceError(f"weights in {model_dir} do not match its config (missing: {missing[:5]}, "
                             f"mismatched: {list(info.get('mismatched_keys', ()))[:5]})")
    return model.to(device).eval(), tokenizer


class OmniPathBackend:
    """OmniPath from a local directory, loaded once; ``analyze`` may be called many times."""

    name = "omnipath"

    def __init__(self, model_dir: str | Path, device: str | None = None, store: FeatureStore | None = None,
                 batch_size: int = 32, num_readers: int = 2) -> None:
        from inference.encoders import default_device

        self.device = device or default_device()
        self.model, self.tokenizer = load_omnipath(model_dir, self.device)
        self.config = self.model.config
        self.store = store or FeatureStore()
        self.batch_size, self.num_readers = batch_size, num_readers
        digest = hashlib.sha256(self.config.to_json_string().encode()).hexdigest()[:12]
        self.model_id = f"omnipath:{Path(model_dir).resolve().name}@{digest}"
        self.tiny = bool(getattr(self.config, "tiny", False))
        self._tissue_masks: dict[tuple[str, int], tuple[np.ndarray, float]] = {}
        try:
            self.generation_config = GenerationConfig.from_pretrained(model_dir, local_files_only=True)
        except OSError:
            self.generation_config = GenerationConfig(max_new_tokens=256, do_sample=False)
        general, pathology = self.config.general_vision_config, self.config.pathology_vision_config
        dtype = self.model.dtype
        self.general = PatchEncoder(self.model.general_encoder, f"{self.model_id}/general", general.image_size,
                                    CLIP_MEAN, CLIP_STD, self.device, dtype)
        self.pathology = PatchEncoder(self.model.pathology_encoder, f"{self.model_id}/pathology",
                                      pathology.image_size, IMAGENET_MEAN, IMAGENET_STD, self.device, dtype)

    # -- steps ----------------------------------------------------------------------------------------
    def _tokens(self, features: dict[str, torch.Tensor], scale: int, task_id: int) -> torch.Tensor:
        general = features[self.general.cache_id].to(self.device)
        pathology = features[self.pathology.cache_id].to(self.device)
        return self.model.enhance(self.model.tile_features(general, pathology, scale), scale, task_id)

    def prompt_ids(self, request: AnalysisRequest, visual_tokens: int) -> torch.Tensor:
        """``(1, T)`` ids: BOS, ``visual_tokens`` image placeholders, then task and question."""
        text = f"\nTask: {request.task}\nQuestion: {request.prompt.strip()}\nAnswer:"
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return torch.tensor([bos + [self.config.image_token_id] * visual_tokens + ids], device=self.device)

    @torch.inference_mode()
    def prepare(self, request: AnalysisRequest, result: AnalysisResult, cancel: threading.Event,
                progress: Progress | None = None) -> torch.Tensor:
        """Steps 1–4 (and the segmentation mask): returns ``(1, V, d)`` visual tokens, fills ``result``."""
        from slides import SlideError, detect_tissue, open_slide

        cfg = self.config
        task_id = cfg.task_id(request.task)
        encoders = [self.general, self.pathology]
        coarse_progress = (lambda done, total: progress("coarse", done, total)) if progress else None
        coarse = extract_features(
            request.slide_path, encoders, cfg.coarse_magnification, tile_size=cfg.tile_size, min_tissue=MIN_TISSUE,
            store=self.store, slide_sha256=request.slide_sha256, batch_size=self.batch_size,
            num_readers=self.num_readers, progress=coarse_progress, cancel=cancel)
        grid, features = coarse.grid, coarse.features
        result.notes.extend(grid.scale.notes)
        if len(grid) == 0:  # nothing looks like tissue: look at everything rather than at nothing
            coarse = extract_features(
                request.slide_path, encoders, cfg.coarse_magnification, tile_size=cfg.tile_size, min_tissue=0.0,
                store=self.store, slide_sha256=coarse.slide_sha256, batch_size=self.batch_size,
                num_readers=self.num_readers, progress=coarse_progress, cancel=cancel)
            grid, features = coarse.grid, coarse.features
            result.notes.append(f"no tissue detected; all {len(grid)} tiles at "
                                f"{grid.magnification:g}× were used")
        coarse_tissue = len(grid)
        if request.roi is not None:
            keep = _meets(grid, request.roi)
            if not keep.any():
                raise InferenceError(f"the region {request.roi} holds no tissue tile at {grid.magnification:g}×")
            grid = grid.subset(keep)
            features = {k: v[torch.from_numpy(keep)] for k, v in features.items()}
        coarse_key = _mag_key(grid.magnification)
        result.tiles_encoded[coarse_key] = coarse.tiles_read
        result.tissue_tiles[coarse_key] = coarse_tissue

        coarse_tokens = self._tokens(features, COARSE, task_id)
        query = self.model.prompt_query(
            torch.tensor(self.tokenizer(request.prompt, add_special_tokens=False).input_ids, dtype=torch.long),
            task_id)
        scores = self.model.score_regions(coarse_tokens, query)
        chosen = select_regions(scores, cfg.pgfc_top_k)

        try:
            with open_slide(request.slide_path) as slide:
                mask_key = (str(request.slide_path), Path(request.slide_path).stat().st_mtime_ns)
                if mask_key not in self._tissue_masks:
                    tissue = detect_tissue(slide)
                    self._tissue_masks = {mask_key: (tissue.mask, float(tissue.downsample))}  # keep one
                mask = self._tissue_masks[mask_key]
                fine_all = tissue_tile_grid(slide, cfg.fine_magnification, cfg.tile_size, min_tissue=MIN_TISSUE,
                                            tissue_mask=mask, l0_roi=request.roi)
                fine_grid, region_of = _fine_tiles(slide, grid, chosen.tolist(), cfg, mask)
                fine_progress = (lambda done, total: progress("fine", done, total)) if progress else None
                fine_feats = encode_grid(slide, fine_grid, encoders, batch_size=self.batch_size,
                                         num_readers=self.num_readers, progress=fine_progress, cancel=cancel)
        except SlideError as exc:
            raise InferenceError(f"cannot read slide: {exc}") from exc
        fine_key = _mag_key(fine_grid.magnification)
        result.tiles_encoded[fine_key] = result.tiles_encoded.get(fine_key, 0) + len(fine_grid)
        result.tissue_tiles.setdefault(fine_key, len(fine_all))

        fine_tokens = self._tokens(dict(zip([e.cache_id for e in encoders], fine_feats, strict=True)), FINE, task_id)
        fine_scores = self.model.score_regions(fine_tokens, query)
        kept: list[int] = []
        for region_index, coarse_index in enumerate(chosen.tolist()):
            members = np.nonzero(region_of == region_index)[0]
            best = sorted(members.tolist(), key=lambda i: (-float(fine_scores[i]), i))[:cfg.fine_tokens_per_region]
            kept.extend(best)
            box = tuple(float(v) for v in grid.l0_boxes()[coarse_index])
            result.regions.append(Region(box, float(scores[coarse_index]), fine_grid.magnification))

        pooled = self.model.pool(coarse_tokens, task_id)
        heads = self.model.heads(pooled.pooled)
        result.task_scores = {
            "cancer": float(torch.sigmoid(heads.cancer.float()).item()),
            "grade": int(heads.grade.argmax().item()) + 1,
            "vascular_invasion": float(torch.sigmoid(heads.vascular_invasion.float()).item()),
            "neural_invasion": float(torch.sigmoid(heads.neural_invasion.float()).item()),
        }
        overview, _ = pool_to_slots(coarse_tokens, grid.tile_cr, cfg.coarse_token_slots)
        visual = torch.cat([pooled.pooled[None], overview, fine_tokens[kept]], dim=0)
        if visual.shape[0] > cfg.visual_token_budget:  # cannot happen by construction; guard the promise
            raise AssertionError(f"{visual.shape[0]} visual tokens exceed the budget {cfg.visual_token_budget}")
        result.visual_tokens = int(visual.shape[0])
        result.visual_token_budget = int(cfg.visual_token_budget)
        if request.task == "segmentation":
            result.polygons = _polygons(grid, self.model.mask_logits(coarse_tokens, query))
        return visual[None]

    def analyze(self, request: AnalysisRequest, progress: Progress | None = None) -> AnalysisStream:
        request.validate()
        if request.task not in self.config.tasks:
            raise InferenceError(f"unknown task {request.task!r}; known tasks: {', '.join(self.config.tasks)}")
        return AnalysisStream(lambda cancel: self._run(request, cancel, progress))

    def generate_kwargs(self, request: AnalysisRequest, visual: torch.Tensor) -> dict[str, object]:
        input_ids = self.prompt_ids(request, visual.shape[1])
        with torch.inference_mode():
            embeds = self.model.embed_inputs(input_ids, visual)
        config = replace_generation(self.generation_config, request.max_new_tokens)
        return {"inputs_embeds": embeds, "attention_mask": torch.ones_like(input_ids),
                "generation_config": config}

    def _run(self, request: AnalysisRequest, cancel: threading.Event, progress: Progress | None
             ) -> Iterator[str]:
        started = time.perf_counter()
        result = start_result(self.model_id, self.name, request.task, self.tiny)
        visual = self.prepare(request, result, cancel, progress)
        timings = Timings(features=time.perf_counter() - started)
        generator = stream_generate(self.model.language_model, self.tokenizer,
                                    self.generate_kwargs(request, visual), cancel, timings, started)
        return (yield from collect_stream(generator, result, timings, started, cancel))


def replace_generation(config: GenerationConfig, max_new_tokens: int | None) -> GenerationConfig:
    """A copy of ``config`` with ``max_new_tokens`` overridden when given."""
    copy = GenerationConfig.from_dict(config.to_dict())
    if max_new_tokens is not None:
        copy.max_new_tokens = int(max_new_tokens)
    return copy


def _meets(grid: TileGrid, l0_roi: tuple[float, float, float, float]) -> np.ndarray:
    """Tiles whose level-0 footprint intersects ``l0_roi`` ``(x, y, w, h)`` → ``(N,)`` bool."""
    x, y, w, h = l0_roi
    xy = grid.l0_xy.astype(np.float64)
    size = grid.l0_tile_size
    return (xy[:, 0] < x + w) & (xy[:, 0] + size > x) & (xy[:, 1] < y + h) & (xy[:, 1] + size > y)


def _fine_tiles(slide: object, coarse: TileGrid, chosen: list[int], cfg: object,
                mask: tuple[np.ndarray, float]) -> tuple[TileGrid, np.ndarray]:
    """Fine tissue tiles inside each chosen coarse tile, concatenated; ``region_of[i]`` = position in ``chosen``."""
    grids, region_of = [], []
    boxes = coarse.l0_boxes()
    for region_index, coarse_index in enumerate(chosen):
        box = tuple(boxes[coarse_index])
        sub = tissue_tile_grid(slide, cfg.fine_magnification, cfg.tile_size, min_tissue=MIN_TISSUE,  # type: ignore[arg-type]
                               tissue_mask=mask, l0_roi=box)
        if len(sub) == 0:  # the coarse tile scored well but no fine tile is tissue enough: keep them all
            sub = tissue_tile_grid(slide, cfg.fine_magnification, cfg.tile_size, min_tissue=0.0,  # type: ignore[arg-type]
                                   l0_roi=box)
        grids.append(sub)
        region_of.extend([region_index] * len(sub))
    first = grids[0]
    merged = replace(first, l0_xy=np.concatenate([g.l0_xy for g in grids]),
                     tile_cr=np.concatenate([g.tile_cr for g in grids]),
                     tissue=np.concatenate([g.tissue for g in grids]))
    return merged, np.asarray(region_of, dtype=np.int64)


def _polygons(grid: TileGrid, logits: torch.Tensor) -> list[list[list[list[float]]]]:
    """Mask logits ``(N, r, r)`` of coarse tiles → polygons in level-0 px (GeoJSON Polygon coordinates)."""
    r = logits.shape[-1]
    cols, rows = grid.grid_size
    raster = np.zeros((rows * r, cols * r), dtype=bool)
    positive = (logits.float() > 0).cpu().numpy()
    for (col, row), tile_mask in zip(grid.tile_cr.tolist(), positive, strict=True):
        raster[row * r:(row + 1) * r, col * r:(col + 1) * r] = tile_mask
    l0_per_px = grid.stride * grid.downsample / r
    ox, oy = grid.l0_origin
    return [[[[ox + x * l0_per_px, oy + y * l0_per_px] for x, y in ring] for ring in polygon]
            for polygon in mask_to_polygons(raster)]
