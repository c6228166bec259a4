"""The ``hf-vlm`` backend: any local Hugging Face image-text-to-text checkpoint (LLaVA family) in OmniPath's place.

It sees the slide thumbnail plus high-resolution crops of the regions PGFC chose. PGFC needs a scorer:
with ``selector_dir`` (an OmniPath checkpoint) the prompt-guided scores of :mod:`inference.omnipath_backend`
are used; without one the coarse tiles richest in tissue are taken, and the result says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

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
from inference.encoders import compute_dtype, default_device
from inference.errors import InferenceError
from inference.feature_store import FeatureStore
from inference.omnipath_backend import OmniPathBackend, replace_generation
from slides.tiling import magnification_scale, tissue_tile_grid

Progress = Callable[[str, int, int], None]


class HFVLMBackend:
    """A LLaVA-family checkpoint from a local directory."""

    name = "hf-vlm"

    def __init__(self, model_dir: str | Path, device: str | None = None, selector_dir: str | Path | None = None,
                 store: FeatureStore | None = None, crops: int = 4, crop_magnification: float = 20.0,
                 coarse_magnification: float = 5.0, thumbnail_size: int = 1024) -> None:
        model_dir = Path(model_dir)
        self.device = device or default_device()
        if not (model_dir / "config.json").is_file():
            raise InferenceError(f"model directory {model_dir} has no config.json (expected a local Hugging Face "
                                 "image-text-to-text checkpoint)")
        try:
            self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(
                model_dir, local_files_only=True, dtype=compute_dtype(self.device)).to(self.device).eval()
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise InferenceError(f"cannot load an image-text-to-text model from {model_dir}: {exc}") from exc
        self.model_id = f"hf-vlm:{model_dir.resolve().name}"
        self.tiny = bool(getattr(self.model.config, "tiny", False))
        self.selector = OmniPathBackend(selector_dir, self.device, store) if selector_dir else None
        self.crops, self.crop_magnification = crops, crop_magnification
        self.coarse_magnification, self.thumbnail_size = coarse_magnification, thumbnail_size
        self.image_token = getattr(self.processor, "image_token", "<image>")

    def analyze(self, request: AnalysisRequest, progress: Progress | None = None) -> AnalysisStream:
        request.validate()
        return AnalysisStream(lambda cancel: self._run(request, cancel, progress))

    def _regions(self, request: AnalysisRequest, result: AnalysisResult, cancel: threading.Event,
                 progress: Progress | None) -> list[Region]:
        if self.selector is not None:
            scratch = AnalysisResult(text="", model="", backend="", task=request.task)
            self.selector.prepare(request, scratch, cancel, progress)
            result.tiles_encoded, result.tissue_tiles = scratch.tiles_encoded, scratch.tissue_tiles
            result.tiles_cached, result.timings.fine_features = scratch.tiles_cached, scratch.timings.fine_features
            result.notes.extend(scratch.notes)
            return scratch.regions[: self.crops]
        from slides import open_slide

        with open_slide(request.slide_path) as slide:
            grid = tissue_tile_grid(slide, self.coarse_magnification, 224, min_tissue=0.0, l0_roi=request.roi)
        order = sorted(range(len(grid)), key=lambda i: (-float(grid.tissue[i]), i))[: self.crops]
        result.notes.append("no PGFC selector model given: crops are the coarse tiles richest in tissue")
        result.tissue_tiles[f"{grid.magnification:g}x"] = int((grid.tissue > 0.25).sum())
        boxes = grid.l0_boxes()
        return [Region(tuple(float(v) for v in boxes[i]), float(grid.tissue[i]), self.crop_magnification)
                for i in order]

    def _run(self, request: AnalysisRequest, cancel: threading.Event, progress: Progress | None
             ) -> Iterator[str]:
        from slides import SlideError, open_slide

        started = time.perf_counter()
        result = start_result(self.model_id, self.name, request.task, self.tiny)
        regions = self._regions(request, result, cancel, progress)
        try:
            with open_slide(request.slide_path) as slide:
                images = [slide.get_thumbnail((self.thumbnail_size, self.thumbnail_size))]
                for region in regions:
                    images.append(_crop(slide, region))
        except SlideError as exc:
            raise InferenceError(f"cannot read slide: {exc}") from exc
        result.regions = regions
        text = f"{self.image_token * len(images)}\nUSER: ({request.task}) {request.prompt.strip()}\nASSISTANT:"
        inputs = self.processor(text=text, images=images, return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        image_token_id = getattr(self.model.config, "image_token_id", None)
        visual = int((inputs["input_ids"] == image_token_id).sum()) if image_token_id is not None else 0
        result.visual_tokens = result.visual_token_budget = visual  # fixed by the number of images
        timings = Timings(features=time.perf_counter() - started, fine_features=result.timings.fine_features)
        config = replace_generation(self.model.generation_config or GenerationConfig(), request.max_new_tokens)
        generator = stream_generate(self.model, self.processor.tokenizer,
                                    {**inputs, "generation_config": config}, cancel, timings, started)
        return (yield from collect_stream(generator, result, timings, started, cancel))


def _crop(slide: object, region: Region, max_px: int = 1024) -> Image.Image:
    """The region's level-0 box read at the region's magnification (capped at ``max_px`` per side)."""
    x, y, w, h = region.l0_box
    downsample = magnification_scale(slide, region.magnification).downsample  # type: ignore[arg-type]
    level = slide.best_level_for_downsample(downsample)  # type: ignore[attr-defined]
    level_ds = slide.level_downsamples[level]  # type: ignore[attr-defined]
    size = (max(1, round(w / level_ds)), max(1, round(h / level_ds)))
    image = slide.read_region((int(x), int(y)), level, size)  # type: ignore[attr-defined]
    out = (max(1, round(w / downsample)), max(1, round(h / downsample)))
    image = image.resize(out, Image.Resampling.BILINEAR) if image.size != out else image
    image.thumbnail((max_px, max_px))
    return image
