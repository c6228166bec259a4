"""Direct reads of JPEG-tiled TIFF pyramids (Aperio SVS, generic tiled TIFF), with DCT-domain downscaling.

OpenSlide decodes every tile at full size. A DeepZoom level that falls between two native levels then
needs 4× the pixels of the finer level, decoded and resized. libjpeg can instead decode a tile at 1/2, 1/4
or 1/8 scale in the DCT domain (``PIL.Image.draft``), which skips most of the inverse DCT, upsampling and
colour conversion work. Here we read the compressed tile bytes ourselves (``os.pread``, so any number of
threads can read at once), splice in the TIFF's shared JPEGTables, force the colour space the TIFF declares
(Aperio writes RGB-coded JPEG streams that libjpeg would otherwise take for YCbCr, as OpenSlide does not),
and keep decoded tiles in a small process-wide LRU.

Coordinate spaces: ``level`` = OpenSlide level index; ``scale`` = JPEG decode scale s ∈ {1, 2, 4, 8};
``v_`` = pixels of the *virtual level* (level pixels / s); ``tile_col``/``tile_row`` = TIFF tile indices.
Pixels outside the level are white, as ``Slide.read_region`` makes OpenSlide's transparent ones.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

SCALES = (1, 2, 4, 8)
WHITE = (255, 255, 255)
_FORMATS = frozenset({"aperio", "generic-tiff"})
_tokens = itertools.count()


class FastPathError(Exception):
    """A tile the fast path could not decode; the caller falls back to OpenSlide."""


@dataclass(frozen=True)
class _JpegLevel:
    width: int
    height: int
    tile_w: int
    tile_h: int
    tiles_across: int
    offsets: np.ndarray  # int64, one per TIFF tile, row-major
    bytecounts: np.ndarray
    tables: bytes | None  # JPEGTables stream (SOI … EOI) or None
    jpegmode: str  # colour space of the JPEG streams: "RGB" or "YCbCr"


class _DecodedTiles:
    """Process-wide LRU of decoded tiles, bounded in bytes; thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[int, int, int, int, int], Image.Image] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[int, int, int, int, int]) -> Image.Image | None:
        with self._lock:
            im = self._items.get(key)
            if im is not None:
                self._items.move_to_end(key)
            return im

    def put(self, key: tuple[int, int, int, int, int], im: Image.Image) -> None:
        size = im.width * im.height * 3
        with self._lock:
            if key in self._items:
                return
            self._items[key] = im
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.width * old.height * 3

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


#: Decoded tiles of all open slides. 64 MiB ≈ 340 full 256² tiles, or four times as many at scale 2.
DECODED_TILES = _DecodedTiles(64 << 20)


def _decode_jpeg(data: bytes, size: tuple[int, int], scale: int, jpegmode: str) -> Image.Image | None:
    """Decode one JPEG stream at 1/``scale`` into an RGB image of ``size``; None if the data is damaged.

    Drives Pillow's libjpeg decoder directly instead of ``Image.open(BytesIO(…)).draft(…)``: the tile
    size is already known from the TIFF, and skipping Pillow's Python-side marker parsing halves the cost
    of decoding a 256×256 tile. ``jpegmode`` forces the stream's colour space as the TIFF declares it.
    """
    im = Image.new("RGB", size, None)  # uninitialised: the decoder writes every pixel
    decoder = Image._getdecoder("RGB", "jpeg", ("RGB", jpegmode, scale, 0))
    try:
        decoder.setimage(im.im, (0, 0, *size))
        consumed, error = decoder.decode(data)
    finally:
        decoder.cleanup()
    # done = negative count; a non-negative one means the decoder wanted more data (truncated tile)
    return im if consumed < 0 and error >= 0 else None


def _level_from_page(page: tifffile.TiffPage) -> _JpegLevel | None:
    if not (
        page.is_tiled
        and page.compression == 7
        and page.photometric in (2, 6)
        and page.planarconfig == 1
        and page.bitspersample == 8
        and page.samplesperpixel == 3
        and not page.extrasamples
        and page.imagedepth == 1
        and page.tilewidth % 8 == 0
        and page.tilelength % 8 == 0
    ):
        return None
    return _JpegLevel(
        width=page.imagewidth,
        height=page.imagelength,
        tile_w=page.tilewidth,
        tile_h=page.tilelength,
        tiles_across=math.ceil(page.imagewidth / page.tilewidth),
        offsets=np.asarray(page.dataoffsets, dtype=np.int64),
        bytecounts=np.asarray(page.databytecounts, dtype=np.int64),
        tables=page.jpegtables or None,
        jpegmode="RGB" if page.photometric == 2 else "YCbCr",
    )


class JpegTiffReader:
    """Reads levels of a JPEG-tiled TIFF directly. Build with ``probe``; thread-safe; ``close`` when done."""

    def __init__(self, path: Path, levels: dict[int, _JpegLevel]) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._levels = levels
        self._token = next(_tokens)

    @classmethod
    def probe(
        cls, path: Path, fmt: str, level_dimensions: tuple[tuple[int, int], ...]
    ) -> JpegTiffReader | None:
        """A reader for the OpenSlide levels of ``path`` that are plain JPEG tiles, or None if none are.

        Levels are matched to TIFF pages by their (w, h); a level whose size matches no page, or several,
        is left to OpenSlide.
        """
        if fmt not in _FORMATS:
            return None
        try:
            with tifffile.TiffFile(path) as tif:
                pages = [p for p in tif.pages if isinstance(p, tifffile.TiffPage)]
                by_size: dict[tuple[int, int], list[tifffile.TiffPage]] = {}
                for p in pages:
                    if p.is_tiled:
                        by_size.setdefault((p.imagewidth, p.imagelength), []).append(p)
                levels = {}
                for level, dims in enumerate(level_dimensions):
                    candidates = by_size.get(tuple(dims), [])
                    if len(candidates) == 1 and (jl := _level_from_page(candidates[0])) is not None:
                        levels[level] = jl
        except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError):
            return None
        return cls(path, levels) if levels else None

    def covers(self, level: int) -> bool:
        """True if ``level`` can be read here."""
        return level in self._levels

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _decode(self, level: int, scale: int, tile_col: int, tile_row: int) -> Image.Image | None:
        """One TIFF tile decoded at 1/scale, RGB, (tile_w/scale, tile_h/scale); None for a missing tile."""
        key = (self._token, level, scale, tile_col, tile_row)
        im = DECODED_TILES.get(key)
        if im is not None:
            return im
        jl = self._levels[level]
        index = tile_row * jl.tiles_across + tile_col
        count = int(jl.bytecounts[index])
        if count == 0:  # Aperio leaves blank tiles out; OpenSlide shows them transparent
            return None
        try:
            data = os.pread(self._fd, count, int(jl.offsets[index]))
        except OSError as e:
            raise FastPathError(f"cannot read tile {tile_col},{tile_row} of level {level}: {e}") from e
        if len(data) != count:
            raise FastPathError(f"tile {tile_col},{tile_row} of level {level} is cut short (truncated file)")
        if jl.tables is not None and len(jl.tables) > 4:
            data = jl.tables[:-2] + data[2:]  # tables without EOI + tile without SOI
        size = (jl.tile_w // scale, jl.tile_h // scale)
        im = _decode_jpeg(data, size, scale, jl.jpegmode)
        if im is None:
            raise FastPathError(f"tile {tile_col},{tile_row} of level {level} is damaged")
        DECODED_TILES.put(key, im)
        return im

    def read(self, level: int, scale: int, v_box: tuple[int, int, int, int]) -> Image.Image:
        """RGB pixels of ``v_box`` = (v_x, v_y, v_w, v_h) in level ``level`` decoded at 1/``scale``.

        A virtual pixel averages a scale×scale block of level pixels (libjpeg's scaled IDCT). Raises
        FastPathError when a tile cannot be decoded.
        """
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}")
        jl = self._levels[level]
        v_x, v_y, v_w, v_h = v_box
        v_tile_w, v_tile_h = jl.tile_w // scale, jl.tile_h // scale
        # whole virtual pixels inside the level; a partial last pixel would mix in tile padding
        v_level_w, v_level_h = jl.width // scale, jl.height // scale
        out = Image.new("RGB", (v_w, v_h), WHITE)
        col0, col1 = max(v_x, 0) // v_tile_w, min(v_x + v_w, v_level_w) - 1
        row0, row1 = max(v_y, 0) // v_tile_h, min(v_y + v_h, v_level_h) - 1
        for tile_row in range(row0, row1 // v_tile_h + 1 if row1 >= 0 else 0):
            for tile_col in range(col0, col1 // v_tile_w + 1 if col1 >= 0 else 0):
                tile = self._decode(level, scale, tile_col, tile_row)
                if tile is not None:
                    out.paste(tile, (tile_col * v_tile_w - v_x, tile_row * v_tile_h - v_y))
        if v_x + v_w > v_level_w:
            out.paste(WHITE, (max(v_level_w - v_x, 0), 0, v_w, v_h))
        if v_y + v_h > v_level_h:
            out.paste(WHITE, (0, max(v_level_h - v_y, 0), v_w, v_h))
        return out
