"""On-disk cache of the features of single high-magnification tiles, the ones PGFC re-reads.

The coarse pass caches a whole tiling per file (:mod:`inference.feature_store`); PGFC instead reads a few
hundred fine tiles chosen by each question, so this cache is keyed per tile: slide sha256, encoder id +
weights hash, magnification, tile size, and the tile's level-0 top-left corner. The first three fix the
pixels of a tile at a given corner (same slide file, same pyramid level and read size), so a second question
about the same slide re-uses every fine tile an earlier one encoded, whatever region grid it came from.

Layout: ``<root>/<sha[:2]>/<sha>/<encoder_id>@<hash16>/mag<M>_tile<T>/chunk-<id>.safetensors``. Each
analysis adds one chunk per encoder holding only the tiles it had to encode (``l0_xy`` ``(K, 2)`` int64 +
``features`` ``(K, D)`` float32, the key in the metadata).

Concurrency and crashes: a chunk is written to a temporary name in its folder, fsynced, then renamed to a
name no other writer uses (atomic on POSIX); files are never modified after that, only deleted. So two GPU
workers may add to the same slide at once, a reader only ever sees whole chunks, and a crash leaves at most
a ``.part`` file that is never read (and is removed once it is an hour old). A chunk that still fails to
parse, or holds another key, is ignored and deleted. The same tile in two chunks (two workers encoding it at
once) is harmless: the first one found is used. A chunk is read through one open file descriptor, so another
process deleting it meanwhile (a merge, an eviction) cannot break a read that has started.

Size: when a folder holds more than ``MAX_CHUNKS`` chunks, the writer merges them into one (bounding the
files a lookup opens); when the whole cache exceeds ``max_bytes`` (``$PATHDESK_FINE_CACHE_MAX_BYTES``,
default 4 GiB) the least recently used chunks are deleted (a hit refreshes a chunk's mtime). A chunk deleted
while another process reads it is either still readable (the open descriptor keeps it) or missing: a miss.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from inference.errors import InferenceError
from inference.files import write_atomically

log = logging.getLogger(__name__)
FORMAT = "pathdesk-fine-tiles/1"
MAX_CHUNKS = 16
DEFAULT_MAX_BYTES = 4 << 30
STALE_PART_SECONDS = 3600
_MAX_HEADER_BYTES = 1 << 20


@dataclass(frozen=True)
class FineTileKey:
    """Everything but the tile corner. ``encoder`` is ``PatchEncoder.cache_id`` (id@hash16)."""

    slide_sha256: str
    encoder: str
    magnification: float
    tile_size: int

    def relpath(self) -> Path:
        return Path(self.slide_sha256[:2], self.slide_sha256, self.encoder.replace("/", "_"),
                    f"mag{self.magnification:g}_tile{self.tile_size}")


def max_bytes_from_env() -> int:
    """``$PATHDESK_FINE_CACHE_MAX_BYTES`` (bytes, > 0), else ``DEFAULT_MAX_BYTES``; a bad value raises."""
    text = os.environ.get("PATHDESK_FINE_CACHE_MAX_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise InferenceError(f"PATHDESK_FINE_CACHE_MAX_BYTES must be a positive number of bytes, got {text!r}")
    return value


class FineTileCache:
    """A folder of fine-tile feature chunks (see the module docstring)."""

    def __init__(self, root: str | Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes if max_bytes is not None else max_bytes_from_env()
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")

    def folder(self, key: FineTileKey) -> Path:
        return self.root / key.relpath()

    def _chunks(self, key: FineTileKey) -> list[Path]:
        try:
            return sorted(self.folder(key).glob("chunk-*.safetensors"))
        except OSError:
            return []

    def _open(self, path: Path, key: FineTileKey, dim: int | None) -> _Chunk | None:
        """The open chunk, or None: gone (a miss) or unusable for ``key`` (deleted, with a warning)."""
        try:
            return _Chunk(path, key, dim)
        except FileNotFoundError:
            return None  # merged or evicted by another process since it was listed
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("deleting unusable fine-tile chunk %s: %s", path, exc)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None

    def lookup(self, key: FineTileKey, l0_xy: np.ndarray, dim: int) -> tuple[torch.Tensor, np.ndarray]:
        """Cached features of the tiles at ``l0_xy`` ``(K, 2)``: ``(K, dim)`` float32 (zeros where missing)
        and a ``(K,)`` bool of the rows found."""
        corners = np.asarray(l0_xy, dtype=np.int64).reshape(-1, 2)
        wanted: dict[tuple[int, int], list[int]] = {}
        for row, (x, y) in enumerate(corners.tolist()):
            wanted.setdefault((x, y), []).append(row)
        features = torch.zeros(len(corners), dim)
        found = np.zeros(len(corners), dtype=bool)
        for path in self._chunks(key):
            if found.all():
                break
            chunk = self._open(path, key, dim)
            if chunk is None:
                continue
            with chunk:
                rows, sources = [], []
                for source, (x, y) in enumerate(chunk.l0_xy.tolist()):
                    for row in wanted.get((x, y), ()):
                        if not found[row]:
                            found[row] = True
                            rows.append(row)
                            sources.append(source)
                if rows:
                    features[torch.tensor(rows)] = torch.from_numpy(chunk.rows(sources))
                    with contextlib.suppress(OSError):  # a read-only cache still serves; it only ages wrongly
                        os.utime(chunk.fileno())  # least recently used goes first
        return features, found

    def add(self, key: FineTileKey, l0_xy: np.ndarray, features: torch.Tensor) -> Path | None:
        """Store ``(K, D)`` features of the tiles at ``l0_xy`` ``(K, 2)`` as a new chunk; then keep the folder
        and the cache within bounds. Returns the chunk's path (None when K = 0)."""
        l0_xy = np.ascontiguousarray(np.asarray(l0_xy, dtype=np.int64).reshape(-1, 2))
        if features.dim() != 2 or features.shape[0] != l0_xy.shape[0]:
            raise ValueError(f"{tuple(features.shape)} features for {l0_xy.shape[0]} tiles")
        if l0_xy.shape[0] == 0:
            return None
        path = self._write(key, l0_xy, features)
        self._merge_if_many(key)
        self._evict()
        return path

    def _write(self, key: FineTileKey, l0_xy: np.ndarray, features: torch.Tensor) -> Path:
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        payload = save({"l0_xy": torch.from_numpy(l0_xy),
                        "features": features.detach().to("cpu", torch.float32).contiguous()},
                       metadata={"format": FORMAT, "key": json.dumps(asdict(key))})
        # time first: chunks sort oldest first, so a lookup prefers (and a merge keeps) the earliest copy
        path = folder / f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.safetensors"
        write_atomically(path, payload)
        return path

    def _merge_if_many(self, key: FineTileKey) -> None:
        chunks = self._chunks(key)
        if len(chunks) <= MAX_CHUNKS:
            return
        corners: list[np.ndarray] = []
        parts: list[np.ndarray] = []
        seen: set[tuple[int, int]] = set()
        merged: list[Path] = []
        for path in chunks:
            chunk = self._open(path, key, parts[0].shape[1] if parts else None)
            if chunk is None:
                continue
            with chunk:
                keep = [i for i, (x, y) in enumerate(chunk.l0_xy.tolist()) if (x, y) not in seen]
                seen.update((int(x), int(y)) for x, y in chunk.l0_xy[keep])
                corners.append(chunk.l0_xy[keep])
                parts.append(chunk.rows(keep))
            merged.append(path)
        if len(merged) < 2:
            return
        # the merged chunk is complete on disk before any of its sources goes away
        self._write(key, np.concatenate(corners), torch.from_numpy(np.concatenate(parts)))
        for path in merged:
            path.unlink(missing_ok=True)

    def _evict(self) -> None:
        entries: list[tuple[float, int, Path]] = []
        total = 0
        now = time.time()
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = Path(folder, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                if name.endswith(".part"):  # a crashed writer's leftover; a live one is minutes old at most
                    if now - stat.st_mtime > STALE_PART_SECONDS:
                        path.unlink(missing_ok=True)
                    continue
                if name.startswith("chunk-") and name.endswith(".safetensors"):
                    entries.append((stat.st_mtime, stat.st_size, path))
                    total += stat.st_size
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


class _Chunk:
    """One chunk file, open: its ``(K, 2)`` corners read and checked, feature rows read on demand.

    Raises ``FileNotFoundError`` when the file is gone, ``ValueError`` when it is not a whole chunk of ``key``
    (with ``dim`` feature columns, when given).
    """

    def __init__(self, path: Path, key: FineTileKey, dim: int | None) -> None:
        self._fh = path.open("rb")
        try:
            self._parse(key, dim)
        except BaseException:
            self._fh.close()
            raise

    def _parse(self, key: FineTileKey, dim: int | None) -> None:
        head = self._fh.read(8)
        if len(head) != 8:
            raise ValueError("truncated header")
        header_len = int.from_bytes(head, "little")
        if header_len > _MAX_HEADER_BYTES:
            raise ValueError(f"header of {header_len} bytes")
        header = json.loads(self._fh.read(header_len))
        meta = header.pop("__metadata__", None) or {}
        if meta.get("format") != FORMAT or json.loads(meta.get("key", "null")) != asdict(key):
            raise ValueError("stored key differs")
        base, size = 8 + header_len, os.fstat(self._fh.fileno()).st_size
        spans = {}
        for name, dtype, itemsize in (("l0_xy", "I64", 8), ("features", "F32", 4)):
            info = header[name]
            begin, end = info["data_offsets"]
            shape = [int(v) for v in info["shape"]]
            if info["dtype"] != dtype or len(shape) != 2 or end - begin != shape[0] * shape[1] * itemsize \
                    or not 0 <= begin <= end <= size - base:
                raise ValueError(f"bad {name} entry {info} in a {size}-byte file")
            spans[name] = (base + begin, shape)
        (l0_start, l0_shape), (self._features_start, features_shape) = spans["l0_xy"], spans["features"]
        if l0_shape[1] != 2 or features_shape[0] != l0_shape[0] or (dim is not None and features_shape[1] != dim):
            raise ValueError(f"inconsistent shapes l0_xy {l0_shape}, features {features_shape}")
        self.dim = features_shape[1]
        self.l0_xy = np.frombuffer(self._read(l0_start, l0_shape[0] * 16), dtype="<i8").reshape(l0_shape)

    def _read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fh.fileno(), length, offset)
        if len(data) != length:
            raise ValueError("truncated data")
        return data

    def rows(self, index: list[int]) -> np.ndarray:
        """Feature rows ``index`` → ``(len(index), dim)`` float32."""
        row_bytes = self.dim * 4
        out = np.empty((len(index), self.dim), dtype=np.float32)
        for i, row in enumerate(index):
            out[i] = np.frombuffer(self._read(self._features_start + row * row_bytes, row_bytes), dtype="<f4")
        return out

    def fileno(self) -> int:
        return self._fh.fileno()

    def __enter__(self) -> _Chunk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()
