"""The ``omnipath`` backend: coarse pass → MGFE → PGFC re-read → LM, streamed.

One analysis, in coordinate spaces of :mod:`slides.tiling`:

1. coarse tissue tiles over the slide (or ROI) at ``config.coarse_magnification``, features from the store;
2. fuse + FiLM (MGFE) → coarse tokens; the prompt + task query scores them (PGFC);
3. the ``pgfc_top_k`` best coarse tiles are re-read at ``config.fine_magnification``; their fine tiles are
   encoded (or taken from the fine-tile cache, :mod:`inference.fine_tile_cache`), FiLMed and scored, and the
   ``fine_tokens_per_region`` best per region are kept;
4. visual tokens = [task-pooled slide token, coarse overview pooled to fit, fine tokens] ≤ budget;
5. the LM streams the answer; segmentation tasks also get mask polygons in level-0 px.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
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
from inference.fine_tile_cache import FineTileKey
from inference.masks import mask_to_polygons
from inference.modeling_omnipath import COARSE, FINE, OmniPathForConditionalGeneration
from inference.pgfc import select_regions
from inference.processing import prompt_ids
from slides.tiling import TileGrid, tile_tissue_fractions, tissue_tile_grid

log = logging.getLogger(__name__)
MIN_TISSUE = 0.25
Progress = Callable[[str, int, int], None]


@dataclass
class Selection:
    """What one request looked at (steps 1–3), before the visual tokens are built.

    grid / features: the coarse tiles (ROI applied) and their encoder features ``{cache_id: (N, D)}``.
    coarse_tokens: ``(N, d)`` FiLMed coarse tokens; query: ``(d,)``; scores: ``(N,)``; chosen: ``(k,)`` coarse
    indices, best first. fine_grid / fine_features / fine_tokens: the ``M`` fine tiles of the chosen regions;
    region_of: ``(M,)`` position in ``chosen`` of each; kept: the fine tiles whose tokens the LM sees.
    """

    task_id: int
    slide_sha256: str
    grid: TileGrid
    features: dict[str, torch.Tensor]
    coarse_tokens: torch.Tensor
    query: torch.Tensor
    scores: torch.Tensor
    chosen: torch.Tensor
    fine_grid: TileGrid
    region_of: np.ndarray
    fine_features: dict[str, torch.Tensor]
    fine_tokens: torch.Tensor
    kept: list[int]


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
        self._fine_tissue_tiles: dict[tuple[float, float, float, float] | None, int] = {}
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
        ids = prompt_ids(self.tokenizer, self.config, request.task, request.prompt, visual_tokens)
        return torch.tensor([ids], device=self.device)

    @torch.inference_mode()
    def select(self, request: AnalysisRequest, result: AnalysisResult, cancel: threading.Event,
               progress: Progress | None = None) -> Selection:
        """Steps 1–3: coarse features and tokens, PGFC scores and regions, fine features of the chosen
        regions (fine-tile cache first) and the fine tiles kept. Fills ``result``'s tile counts, regions, notes."""
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
        result.tiles_cached[coarse_key] = coarse_tissue if coarse.tiles_read == 0 else 0
        result.tissue_tiles[coarse_key] = coarse_tissue

        coarse_tokens = self._tokens(features, COARSE, task_id)
        query = self.model.prompt_query(
            torch.tensor(self.tokenizer(request.prompt, add_special_tokens=False).input_ids, dtype=torch.long),
            task_id)
        scores = self.model.score_regions(coarse_tokens, query)
        chosen = select_regions(scores, cfg.pgfc_top_k)

        fine_started = time.perf_counter()
        try:
            with open_slide(request.slide_path) as slide:
                mask_key = (str(request.slide_path), Path(request.slide_path).stat().st_mtime_ns)
                if mask_key not in self._tissue_masks:
                    tissue = detect_tissue(slide)
                    self._tissue_masks = {mask_key: (tissue.mask, float(tissue.downsample))}  # keep one
                    self._fine_tissue_tiles = {}
                mask = self._tissue_masks[mask_key]
                if request.roi not in self._fine_tissue_tiles:  # the count depends on the slide and ROI only
                    if len(self._fine_tissue_tiles) >= 256:
                        self._fine_tissue_tiles = {}
                    self._fine_tissue_tiles[request.roi] = len(tissue_tile_grid(
                        slide, cfg.fine_magnification, cfg.tile_size, min_tissue=MIN_TISSUE, tissue_mask=mask,
                        l0_roi=request.roi))
                fine_grid, region_of = _fine_tiles(slide, grid, chosen.tolist(), cfg, mask)
                fine_feats, encoded = self._fine_features(slide, fine_grid, coarse.slide_sha256, cancel, progress)
        except SlideError as exc:
            raise InferenceError(f"cannot read slide: {exc}") from exc
        fine_key = _mag_key(fine_grid.magnification)
        result.tiles_encoded[fine_key] = result.tiles_encoded.get(fine_key, 0) + encoded
        result.tiles_cached[fine_key] = result.tiles_cached.get(fine_key, 0) + len(fine_grid) - encoded
        result.tissue_tiles.setdefault(fine_key, self._fine_tissue_tiles[request.roi])

        fine_tokens = self._tokens(fine_feats, FINE, task_id)
        fine_scores = self.model.score_regions(fine_tokens, query)
        kept: list[int] = []
        boxes = grid.l0_boxes()
        for region_index, coarse_index in enumerate(chosen.tolist()):
            members = np.nonzero(region_of == region_index)[0]
            best = sorted(members.tolist(), key=lambda i: (-float(fine_scores[i]), i))[:cfg.fine_tokens_per_region]
            kept.extend(best)
            box = tuple(float(v) for v in boxes[coarse_index])
            result.regions.append(Region(box, float(scores[coarse_index]), fine_grid.magnification, len(members)))
        result.timings.fine_features = time.perf_counter() - fine_started
        return Selection(task_id=task_id, slide_sha256=coarse.slide_sha256, grid=grid, features=features,
                         coarse_tokens=coarse_tokens, query=query, scores=scores, chosen=chosen,
                         fine_grid=fine_grid, region_of=region_of, fine_features=fine_feats,
                         fine_tokens=fine_tokens, kept=kept)

    def _fine_features(self, slide: object, fine_grid: TileGrid, slide_sha256: str, cancel: threading.Event,
                       progress: Progress | None) -> tuple[dict[str, torch.Tensor], int]:
        """Features ``{cache_id: (M, D)}`` of the fine tiles, from the fine-tile cache where it has them; the
        rest are read once, encoded by the encoders that lack them, and added to the cache. Returns
        (features, number of tiles read and encoded)."""
        cache = self.store.fine_tiles
        total = len(fine_grid)
        features: dict[str, torch.Tensor] = {}
        found: dict[str, np.ndarray] = {}
        keys: dict[str, FineTileKey] = {}
        for encoder in (self.general, self.pathology):
            keys[encoder.cache_id] = FineTileKey(slide_sha256, encoder.cache_id, float(fine_grid.magnification),
                                                 int(fine_grid.tile_size))
            features[encoder.cache_id], found[encoder.cache_id] = cache.lookup(
                keys[encoder.cache_id], fine_grid.l0_xy, encoder.embed_dim)
        missing = np.nonzero(~np.logical_and.reduce(list(found.values())))[0]
        cached = total - len(missing)
        if len(missing) == 0:
            if progress is not None:
                progress("fine", total, total)
            return features, 0
        lacking = [e for e in (self.general, self.pathology) if not found[e.cache_id][missing].all()]
        fine_progress = (lambda done, _: progress("fine", cached + done, total)) if progress else None
        encoded = encode_grid(slide, fine_grid.subset(missing), lacking, batch_size=self.batch_size,
                              num_readers=self.num_readers, progress=fine_progress, cancel=cancel)
        for encoder, new in zip(lacking, encoded, strict=True):
            new_rows = ~found[encoder.cache_id][missing]  # rows this encoder had cached keep the cached value
            rows = torch.from_numpy(missing[new_rows])
            features[encoder.cache_id][rows] = new[torch.from_numpy(new_rows)]
            try:
                cache.add(keys[encoder.cache_id], fine_grid.l0_xy[missing[new_rows]], new[torch.from_numpy(new_rows)])
            except OSError as exc:  # a full or read-only disk costs re-encoding later, not this answer
                log.warning("could not add %d fine tiles to the cache: %s", int(new_rows.sum()), exc)
        return features, len(missing)

    @torch.inference_mode()
    def prepare(self, request: AnalysisRequest, result: AnalysisResult, cancel: threading.Event,
                progress: Progress | None = None) -> torch.Tensor:
        """Steps 1–4 (and the segmentation mask): returns ``(1, V, d)`` visual tokens, fills ``result``."""
        cfg = self.config
        selection = self.select(request, result, cancel, progress)
        pooled = self.model.pool(selection.coarse_tokens, selection.task_id)
        heads = self.model.heads(pooled.pooled)
        result.task_scores = {
            "cancer": float(torch.sigmoid(heads.cancer.float()).item()),
            "grade": int(heads.grade.argmax().item()) + 1,
            "vascular_invasion": float(torch.sigmoid(heads.vascular_invasion.float()).item()),
            "neural_invasion": float(torch.sigmoid(heads.neural_invasion.float()).item()),
        }
        visual = self.model.assemble_visual_tokens(pooled.pooled, selection.coarse_tokens, selection.grid.tile_cr,
                                                   selection.fine_tokens[selection.kept])
        if visual.shape[0] > cfg.visual_token_budget:  # cannot happen by construction; guard the promise
            raise AssertionError(f"{visual.shape[0]} visual tokens exceed the budget {cfg.visual_token_budget}")
        result.visual_tokens = int(visual.shape[0])
        result.visual_token_budget = int(cfg.visual_token_budget)
        if request.task == "segmentation":
            result.polygons = _polygons(selection.grid, self.model.mask_logits(selection.coarse_tokens,
                                                                               selection.query))
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
        timings = Timings(features=time.perf_counter() - started, fine_features=result.timings.fine_features)
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
    """Fine tissue tiles inside each chosen coarse tile, concatenated; ``region_of[i]`` = position in ``chosen``.

    A region whose fine tiles are all below ``MIN_TISSUE`` keeps them all (it scored well). The tissue
    fractions of every region are computed in one pass over the mask (one integral image, not one per region).
    """
    boxes = coarse.l0_boxes()
    grids = [tissue_tile_grid(slide, cfg.fine_magnification, cfg.tile_size, min_tissue=0.0,  # type: ignore[arg-type]
                              l0_roi=tuple(boxes[coarse_index])) for coarse_index in chosen]
    fractions = tile_tissue_fractions(np.concatenate([g.l0_xy for g in grids]), grids[0].l0_tile_size, *mask)
    kept, region_of, start = [], [], 0
    for region_index, grid in enumerate(grids):
        tissue = fractions[start:start + len(grid)]
        start += len(grid)
        keep = tissue >= MIN_TISSUE
        if not keep.any():
            keep[:] = True
        kept.append(replace(grid.subset(keep), tissue=tissue[keep]))
        region_of.extend([region_index] * int(keep.sum()))
    merged = replace(kept[0], l0_xy=np.concatenate([g.l0_xy for g in kept]),
                     tile_cr=np.concatenate([g.tile_cr for g in kept]),
                     tissue=np.concatenate([g.tissue for g in kept]))
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
