"""On-disk cache of tile features, one safetensors file per (slide, encoder, magnification, tiling).

Key: slide sha256, encoder id + weights hash, requested magnification, tile size, stride, tissue threshold.
Layout: ``<root>/<sha[:2]>/<sha>/<encoder_id>@<hash16>/mag<M>_tile<T>_stride<S>_tissue<F>.safetensors``.

A file is written to a temporary name in the same folder, flushed to disk, then renamed over the final
name (atomic on POSIX), so a crash never leaves a partial file under the final name. A final file that
still fails to parse, or whose stored key differs, is treated as absent and rewritten, never trusted.

There is one such file per slide, encoder and tiling, so the store grows with the slides analysed and is not
bounded here (delete a slide's ``<sha[:2]>/<sha>`` folder with the slide). The per-tile features of the
high-magnification tiles PGFC reads live next to it, in ``<root>/fine-tiles`` (:mod:`inference.fine_tile_cache`),
which grows with every question and is bounded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from inference.files import write_atomically
from inference.fine_tile_cache import FineTileCache
from slides.tiling import MagnificationScale, TileGrid

log = logging.getLogger(__name__)
FORMAT = "pathdesk-features/1"
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def default_store_root() -> Path:
    """``$PATHDESK_FEATURE_STORE``, else ``~/.cache/pathdesk/features``."""
    env = os.environ.get("PATHDESK_FEATURE_STORE")
    return Path(env) if env else Path.home() / ".cache" / "pathdesk" / "features"


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file, remembered per (path, size, mtime) within this process."""
    path = Path(path)
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_MEMO[memo_key] = digest.hexdigest()
    return _SHA_MEMO[memo_key]


@dataclass(frozen=True)
class FeatureKey:
    """What identifies one cached feature set. ``encoder`` is ``PatchEncoder.cache_id`` (id@hash16)."""

    slide_sha256: str
    encoder: str
    magnification: float
    tile_size: int
    stride: int
    min_tissue: float

    def relpath(self) -> Path:
        name = (f"mag{self.magnification:g}_tile{self.tile_size}_stride{self.stride}"
                f"_tissue{self.min_tissue:g}.safetensors")
        return Path(self.slide_sha256[:2], self.slide_sha256, self.encoder.replace("/", "_"), name)


@dataclass
class StoredFeatures:
    """Features of every tile of ``grid``: ``features`` is ``(N, D)`` float32, row i ↔ ``grid.l0_xy[i]``."""

    key: FeatureKey
    grid: TileGrid
    features: torch.Tensor


def _grid_meta(grid: TileGrid) -> str:
    return json.dumps({
        "scale": asdict(grid.scale), "tile_size": grid.tile_size, "stride": grid.stride, "level": grid.level,
        "level_downsample": grid.level_downsample, "l0_origin": list(grid.l0_origin),
        "grid_size": list(grid.grid_size),
    })


def _grid_from(meta: str, tensors: dict[str, torch.Tensor]) -> TileGrid:
    data = json.loads(meta)
    scale = data["scale"]
    scale["notes"] = tuple(scale["notes"])
    return TileGrid(
        scale=MagnificationScale(**scale), tile_size=data["tile_size"], stride=data["stride"], level=data["level"],
        level_downsample=data["level_downsample"], l0_origin=tuple(data["l0_origin"]),
        grid_size=tuple(data["grid_size"]), l0_xy=tensors["l0_xy"].numpy(), tile_cr=tensors["tile_cr"].numpy(),
        tissue=tensors["tissue"].numpy(),
    )


class FeatureStore:
    """A folder of cached feature files (see the module docstring)."""

    def __init__(self, root: str | Path | None = None, fine_tiles_max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()
        self.fine_tiles = FineTileCache(self.root / "fine-tiles", fine_tiles_max_bytes)
        """Per-tile features of the fine tiles PGFC re-reads (bounded, see :mod:`inference.fine_tile_cache`)."""

    def path(self, key: FeatureKey) -> Path:
        return self.root / key.relpath()

    def load(self, key: FeatureKey) -> StoredFeatures | None:
        """The cached features for ``key``, or None when absent, unreadable or written for another key."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            tensors = load_file(str(path))
            with path.open("rb") as fh:
                header_len = int.from_bytes(fh.read(8), "little")
                meta = json.loads(fh.read(header_len)).get("__metadata__", {})
            if meta.get("format") != FORMAT or json.loads(meta["key"]) != asdict(key):
                raise ValueError("stored key differs")
            grid = _grid_from(meta["grid"], tensors)
            if tensors["features"].shape[0] != len(grid):
                raise ValueError("feature rows do not match tiles")
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unusable feature file %s: %s", path, exc)
            return None
        return StoredFeatures(key=key, grid=grid, features=tensors["features"])

    def save(self, key: FeatureKey, grid: TileGrid, features: torch.Tensor) -> Path:
        """Write ``(N, D)`` features for ``grid`` atomically; returns the final path."""
        if features.shape[0] != len(grid):
            raise ValueError(f"{features.shape[0]} feature rows for {len(grid)} tiles")
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = save(
            {
                "features": features.detach().to("cpu", torch.float32).contiguous(),
                "l0_xy": torch.from_numpy(np.ascontiguousarray(grid.l0_xy, dtype=np.int64)),
                "tile_cr": torch.from_numpy(np.ascontiguousarray(grid.tile_cr, dtype=np.int64)),
                "tissue": torch.from_numpy(np.ascontiguousarray(grid.tissue, dtype=np.float32)),
            },
            metadata={"format": FORMAT, "key": json.dumps(asdict(key)), "grid": _grid_meta(grid)},
        )
        write_atomically(path, payload)
        return path
