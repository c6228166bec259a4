"""Tile feature extraction: reader threads decode tiles → batches → encoders, overlapped.

Reader threads read and decode (JPEG) tiles into uint8 batches while the calling thread runs the
encoders on the previous batch; torch releases the GIL during kernels, so decoding and encoding proceed
together and the encoder is fed from a small bounded queue. Tiles are read once and fed to every encoder.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inference.encoders import PatchEncoder
from inference.errors import InferenceError
from inference.feature_store import FeatureKey, FeatureStore, StoredFeatures, file_sha256
from slides.tiling import TileGrid, tissue_tile_grid

Progress = Callable[[int, int], None]
"""``progress(tiles_done, tiles_total)``, called from the calling thread after each batch."""


class Cancelled(InferenceError):
    """The caller cancelled the work (``cancel`` event set)."""


@dataclass
class TileCounter:
    """Tiles actually read from slide files (thread-safe); lets callers prove a cache hit read nothing."""

    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n


def _reader_size(grid: TileGrid, encoders: Sequence[PatchEncoder]) -> int:
    """Resize in the reader threads when every encoder wants the same smaller size (less work downstream)."""
    sizes = {e.image_size for e in encoders}
    return sizes.pop() if len(sizes) == 1 and min(sizes | {grid.tile_size}) < grid.tile_size else grid.tile_size


def read_batches(
    slide: object,
    grid: TileGrid,
    batch_size: int,
    out_size: int,
    num_readers: int,
    counter: TileCounter | None = None,
    stop: threading.Event | None = None,
) -> tuple[queue.Queue, list[threading.Thread], int]:
    """Start reader threads; they put ``(batch_index, (B, S, S, 3) uint8 tensor)`` or an exception on a queue.

    Returns (queue, threads, number of batches). The queue holds at most ``2 * num_readers`` batches, so
    readers run at most that far ahead of the encoder. Setting ``stop`` makes readers quit after their
    current batch.
    """
    n_batches = (len(grid) + batch_size - 1) // batch_size
    work: queue.Queue[int] = queue.Queue()
    for index in range(n_batches):
        work.put(index)
    out: queue.Queue = queue.Queue(maxsize=max(2, 2 * num_readers))

    def reader() -> None:
        while not (stop is not None and stop.is_set()):
            try:
                index = work.get_nowait()
            except queue.Empty:
                return
            try:
                start = index * batch_size
                end = min(len(grid), start + batch_size)
                pixels = np.empty((end - start, out_size, out_size, 3), np.uint8)
                for row, tile in enumerate(range(start, end)):
                    image = grid.read_tile(slide, tile)  # type: ignore[arg-type]
                    if out_size != grid.tile_size:
                        image = image.resize((out_size, out_size), Image.Resampling.BILINEAR)
                    pixels[row] = np.asarray(image)
                if counter is not None:
                    counter.add(end - start)
                out.put((index, torch.from_numpy(pixels)))
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
                out.put((index, exc))
                return

    threads = [threading.Thread(target=reader, daemon=True, name=f"tile-reader-{i}") for i in range(num_readers)]
    for thread in threads:
        thread.start()
    return out, threads, n_batches


def encode_grid(
    slide: object,
    grid: TileGrid,
    encoders: Sequence[PatchEncoder],
    *,
    batch_size: int = 32,
    num_readers: int = 2,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    counter: TileCounter | None = None,
) -> list[torch.Tensor]:
    """Encode every tile of ``grid`` with each encoder → one ``(N, D_e)`` float32 CPU tensor per encoder."""
    results: list[list[torch.Tensor | None]] = [[] for _ in encoders]
    if len(grid) == 0:
        return [torch.zeros(0, e.embed_dim) for e in encoders]
    out_size = _reader_size(grid, encoders)
    stop = threading.Event()
    batches, threads, n_batches = read_batches(slide, grid, batch_size, out_size, num_readers, counter, stop)
    for per_encoder in results:
        per_encoder.extend([None] * n_batches)
    done = 0
    try:
        for _ in range(n_batches):
            if cancel is not None and cancel.is_set():
                raise Cancelled("feature extraction was cancelled")
            index, pixels = batches.get()
            if isinstance(pixels, BaseException):
                if isinstance(pixels, InferenceError):
                    raise pixels
                raise InferenceError(f"cannot read tiles: {pixels}") from pixels
            for e, encoder in enumerate(encoders):
                results[e][index] = encoder.encode(pixels)
            done += pixels.shape[0]
            if progress is not None:
                progress(done, len(grid))
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):  # drain so readers blocked on a full queue can exit
            try:
                batches.get(timeout=0.05)
            except queue.Empty:
                continue
    return [torch.cat([t for t in per_encoder if t is not None]) for per_encoder in results]


@dataclass
class ExtractionResult:
    """Features of one slide at one magnification for each encoder.

    features: ``{encoder.cache_id: (N, D) float32}``, row i ↔ ``grid.l0_xy[i]``.
    tiles_read: tiles decoded from the slide by this call (0 when everything came from the store).
    reused: encoder cache ids served from the store.
    """

    grid: TileGrid
    features: dict[str, torch.Tensor]
    slide_sha256: str
    tiles_read: int
    reused: list[str]
    seconds: float
    paths: dict[str, Path]


def extract_features(
    slide_path: str | Path,
    encoders: Sequence[PatchEncoder],
    magnification: float,
    *,
    tile_size: int = 224,
    stride: int | None = None,
    min_tissue: float = 0.25,
    store: FeatureStore | None = None,
    slide_sha256: str | None = None,
    batch_size: int = 32,
    num_readers: int = 2,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ExtractionResult:
    """Features of every tissue tile of a slide at ``magnification``, from the store when cached.

    A store hit needs neither the slide's pixels nor its metadata: with ``slide_sha256`` given the slide
    file is not even opened. Misses are extracted (tiles read once for all missing encoders) and saved.
    """
    from slides import SlideError, open_slide

    started = time.perf_counter()
    store = store or FeatureStore()
    stride = tile_size if stride is None else stride
    sha = slide_sha256 or file_sha256(slide_path)
    keys = {e.cache_id: FeatureKey(sha, e.cache_id, float(magnification), tile_size, stride, float(min_tissue))
            for e in encoders}
    cached: dict[str, StoredFeatures] = {}
    for cache_id, key in keys.items():
        hit = store.load(key)
        if hit is not None:
            cached[cache_id] = hit
    missing = [e for e in encoders if e.cache_id not in cached]
    counter = TileCounter()
    features = {cache_id: hit.features for cache_id, hit in cached.items()}
    grid = next(iter(cached.values())).grid if cached else None
    if missing:
        try:
            with open_slide(slide_path) as slide:
                if grid is None:
                    grid = tissue_tile_grid(slide, magnification, tile_size, stride, min_tissue=min_tissue)
                encoded = encode_grid(slide, grid, missing, batch_size=batch_size, num_readers=num_readers,
                                      progress=progress, cancel=cancel, counter=counter)
        except SlideError as exc:
            raise InferenceError(f"cannot read slide: {exc}") from exc
        for encoder, feats in zip(missing, encoded, strict=True):
            store.save(keys[encoder.cache_id], grid, feats)
            features[encoder.cache_id] = feats
    elif progress is not None and grid is not None:
        progress(len(grid), len(grid))
    assert grid is not None
    return ExtractionResult(
        grid=grid, features=features, slide_sha256=sha, tiles_read=counter.count, reused=sorted(cached),
        seconds=time.perf_counter() - started, paths={c: store.path(k) for c, k in keys.items()},
    )
