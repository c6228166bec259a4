"""Synthetic slide files for tests and benchmarks.

Every writer here is cheap enough to call from a test: pyramids are painted tile by tile from procedural
textures (nothing holds a whole level in memory), background tiles are JPEG-encoded once and reused, and
the "big plain TIFF" is written as a sparse file without pixel data.

Coordinates: ``l0_`` = level-0 pixels (x to the right, y down); boxes are ``(l0_x0, l0_y0, l0_x1, l0_y1)``
with the end exclusive. Sizes are ``(width, height)`` in pixels. Microns per pixel (mpp) are level-0 µm/px.

Usage::

    from slides.synth import Blob, write_pyramidal_tiff, write_plain_tiff, write_png_photo

    write_pyramidal_tiff(tmp_path / "s.tiff", (4096, 3072), mpp=0.25, aperio=True)
    write_pyramidal_tiff(p, (2048, 2048), blobs=[Blob((0, 0, 1024, 2048), "nuclei"),
                                                 Blob((1024, 0, 2048, 2048), "fat", shape="rect")])
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

#: A texture paints pixels from their level-0 centre coordinates.
#: ``texture(l0_x, l0_y)`` gets float arrays of shape (1, W) and (H, 1) and returns uint8 RGB (H, W, 3).
Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Background colour of generated slides (RGB); near-white like a real glass slide, saturation ~0.
BACKGROUND = (243, 243, 243)


def _hash_noise(l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
    """Deterministic per-pixel noise in [0, 1), float32 (H, W); the same at a pixel whatever tile paints it."""
    xi = l0_x.astype(np.int64) & 0xFFFFFFFF
    yi = l0_y.astype(np.int64) & 0xFFFFFFFF
    h = (xi * 73856093) ^ (yi * 19349663)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFF).astype(np.float32) / 256.0


def _mix(base: Sequence[float], other: Sequence[float], weight: np.ndarray) -> np.ndarray:
    """Blend two RGB colours with per-pixel weight in [0, 1] (H, W) → float32 (H, W, 3)."""
    b = np.asarray(base, np.float32)
    o = np.asarray(other, np.float32)
    return b + (o - b) * weight[..., None]


def stroma(l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
    """Pink eosin stroma with wavy fibres (period ~14 px) and fine noise."""
    fib = np.sin((l0_x * 0.8 + l0_y * 0.6) / 2.2 + 3.0 * np.sin(l0_y / 40.0)) * 0.5 + 0.5
    rgb = _mix((236, 160, 196), (205, 110, 165), fib * 0.8)
    rgb += (_hash_noise(l0_x, l0_y)[..., None] - 0.5) * 18
    return np.clip(rgb, 0, 255).astype(np.uint8)


def nuclei(l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
    """Dense purple haematoxylin nuclei (radius ~6 px on a jittered 20 px grid) over pale pink."""
    cell = 20.0
    cx = np.floor(l0_x / cell)
    cy = np.floor(l0_y / cell)
    jitter_x = _hash_noise(cx, cy) * 8 - 4
    jitter_y = _hash_noise(cy + 7, cx + 3) * 8 - 4
    dx = (l0_x - cx * cell - cell / 2 - jitter_x) / 6.5
    dy = (l0_y - cy * cell - cell / 2 - jitter_y) / 5.5
    inside = np.clip(1.6 - (dx * dx + dy * dy), 0.0, 1.0)
    rgb = _mix((228, 178, 210), (92, 52, 140), inside)
    rgb += (_hash_noise(l0_x, l0_y)[..., None] - 0.5) * 22
    return np.clip(rgb, 0, 255).astype(np.uint8)


def fat(l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
    """Adipose tissue: large pale cells (~60 px) with thin pink membranes."""
    s = np.abs(np.sin(l0_x / 19.0 + np.sin(l0_y / 23.0))) * np.abs(np.sin(l0_y / 19.0 + np.sin(l0_x / 29.0)))
    membrane = (s < 0.12).astype(np.float32)
    rgb = _mix((248, 236, 242), (214, 130, 178), membrane)
    rgb += (_hash_noise(l0_x, l0_y)[..., None] - 0.5) * 8
    return np.clip(rgb, 0, 255).astype(np.uint8)


TEXTURES: dict[str, Texture] = {"stroma": stroma, "nuclei": nuclei, "fat": fat}


@dataclass(frozen=True)
class Blob:
    """One painted region of a synthetic slide.

    box: (l0_x0, l0_y0, l0_x1, l0_y1), level-0 pixels, end exclusive.
    texture: a name from ``TEXTURES`` ("stroma", "nuclei", "fat") or a ``Texture`` callable.
    shape: "ellipse" (inscribed in box) or "rect".
    """

    box: tuple[int, int, int, int]
    texture: str | Texture = "nuclei"
    shape: str = "ellipse"

    def area(self) -> float:
        """Painted area in level-0 px² (ellipse area is π·a·b)."""
        w = self.box[2] - self.box[0]
        h = self.box[3] - self.box[1]
        return math.pi * w * h / 4 if self.shape == "ellipse" else float(w * h)

    def paint_fn(self) -> Texture:
        return TEXTURES[self.texture] if isinstance(self.texture, str) else self.texture


def default_blobs(size: tuple[int, int]) -> list[Blob]:
    """Three non-overlapping tissue-like ellipses (nuclei, stroma, fat) covering ~38 % of a slide of ``size`` (w, h) l0 px."""
    w, h = size
    return [
        Blob((int(w * 0.08), int(h * 0.10), int(w * 0.48), int(h * 0.60)), "nuclei"),
        Blob((int(w * 0.55), int(h * 0.15), int(w * 0.92), int(h * 0.55)), "stroma"),
        Blob((int(w * 0.25), int(h * 0.66), int(w * 0.75), int(h * 0.94)), "fat"),
    ]


def tissue_fraction(blobs: Sequence[Blob], size: tuple[int, int]) -> float:
    """Expected tissue fraction (0..1) of a slide painted with non-overlapping ``blobs``."""
    return sum(b.area() for b in blobs) / (size[0] * size[1])


def paint_tile(
    blobs: Sequence[Blob], downsample: float, origin: tuple[int, int], size: tuple[int, int]
) -> np.ndarray | None:
    """Pixels of one tile, or None if the tile is pure background.

    downsample: level-0 px per level px. origin: (x, y) of the tile in level px. size: (w, h) level px.
    Returns uint8 RGB (h, w, 3).
    """
    lx0, ly0 = origin
    tw, th = size
    l0_box = (lx0 * downsample, ly0 * downsample, (lx0 + tw) * downsample, (ly0 + th) * downsample)
    hits = [
        b for b in blobs
        if b.box[0] < l0_box[2] and b.box[2] > l0_box[0] and b.box[1] < l0_box[3] and b.box[3] > l0_box[1]
    ]
    if not hits:
        return None
    l0_x = ((lx0 + np.arange(tw, dtype=np.float32) + 0.5) * downsample)[None, :]
    l0_y = ((ly0 + np.arange(th, dtype=np.float32) + 0.5) * downsample)[:, None]
    out = np.empty((th, tw, 3), np.uint8)
    out[...] = BACKGROUND
    for b in hits:
        x0, y0, x1, y1 = b.box
        if b.shape == "ellipse":
            rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
            inside = ((l0_x - x0 - rx) / rx) ** 2 + ((l0_y - y0 - ry) / ry) ** 2 <= 1.0
        else:
            inside = (l0_x >= x0) & (l0_x < x1) & (l0_y >= y0) & (l0_y < y1)
        if inside.any():
            out[inside] = b.paint_fn()(l0_x, l0_y)[inside]
    return out


def _split_jpeg_tables(jpeg: bytes) -> tuple[bytes, bytes]:
    """Split a JPEG stream into (tables-only stream, abbreviated image stream), as TIFF JPEGTables wants."""
    pos = 2
    tables = bytearray(b"\xff\xd8")
    image = bytearray(b"\xff\xd8")
    while pos < len(jpeg):
        marker = jpeg[pos + 1]
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        segment = jpeg[pos : pos + 2 + length]
        if marker == 0xDA:  # start of scan: the rest is image data
            image += jpeg[pos:]
            break
        if marker in (0xDB, 0xC4):  # quantisation / Huffman tables
            tables += segment
        elif not 0xE0 <= marker <= 0xEF:  # drop APPn (JFIF) as scanners do
            image += segment
        pos += 2 + length
    return bytes(tables + b"\xff\xd9"), bytes(image)


def write_pyramidal_tiff(
    path: str | Path,
    size: tuple[int, int] = (2048, 1536),
    *,
    tile_size: int = 256,
    downsamples: Sequence[int] = (1, 4, 16),
    compression: str = "jpeg",
    jpeg_quality: int = 80,
    photometric: str = "ycbcr",
    jpeg_tables: bool = False,
    mpp: float | None = None,
    aperio: bool = False,
    objective_power: float = 20,
    blobs: Sequence[Blob] | None = None,
) -> Path:
    """Write a tiled pyramidal TIFF that OpenSlide reads as "generic-tiff" (or "aperio" with ``aperio=True``).

    size: level-0 (width, height) in px. tile_size: TIFF tile edge in px (multiple of 16).
    downsamples: integer level-0 px per level px for each level, starting with 1 (each level is
    ceil(size / downsample)). compression: "jpeg", "zlib", "lzw" or "none".
    jpeg_quality: 1..100. photometric: for JPEG, "ycbcr" (TIFF YCbCr, 4:2:0 stream) or "rgb" (TIFF RGB,
    stream coded in RGB without colour transform, like Aperio's "JPEG/RGB").
    jpeg_tables: put the shared quantisation/Huffman tables in the TIFF JPEGTables tag, as scanners do.
    mpp: level-0 µm/px written as TIFF resolution (px/cm) and, with ``aperio``, as "MPP = …";
    None writes no resolution tags. aperio: write an Aperio ImageDescription ("Aperio Image Library …
    |AppMag = <objective_power>|MPP = <mpp>"). blobs: painted regions (default ``default_blobs(size)``).
    Returns ``path`` as a Path.
    """
    path = Path(path)
    if downsamples[0] != 1:
        raise ValueError("downsamples must start with 1")
    blobs = default_blobs(size) if blobs is None else list(blobs)
    w, h = size
    codec = {"jpeg": "jpeg", "zlib": "zlib", "lzw": "lzw", "none": None}[compression]
    is_jpeg = codec == "jpeg"
    if is_jpeg and photometric not in ("ycbcr", "rgb"):
        raise ValueError("photometric must be 'ycbcr' or 'rgb'")
    jpeg_colour = {"colorspace": "rgb", "outcolorspace": "rgb"} if photometric == "rgb" else {}
    tables: bytes | None = None

    def encode(tile: np.ndarray) -> bytes:
        nonlocal tables
        data = imagecodecs.jpeg8_encode(tile, level=jpeg_quality, subsampling="420", **jpeg_colour)
        if not jpeg_tables:
            return data
        tile_tables, data = _split_jpeg_tables(data)
        if tables is None:
            tables = tile_tables
        elif tile_tables != tables:
            raise AssertionError("libjpeg produced different tables for tiles of one level")
        return data

    bg_tile = np.empty((tile_size, tile_size, 3), np.uint8)
    bg_tile[...] = BACKGROUND
    bg_bytes = encode(bg_tile) if is_jpeg else b""

    description = ""
    if aperio:
        description = (
            f"Aperio Image Library v12.0.5\r\n{w}x{h} [0,0 {w}x{h}] ({tile_size}x{tile_size}) "
            f"JPEG/RGB Q={jpeg_quality}|AppMag = {objective_power:g}"
        )
        if mpp is not None:
            description += f"|MPP = {mpp:.4f}"
    resolution = None if mpp is None else (1e4 / mpp, 1e4 / mpp)

    with tifffile.TiffWriter(path, bigtiff=w * h > 2**30) as tw:
        for index, ds in enumerate(downsamples):
            lw, lh = math.ceil(w / ds), math.ceil(h / ds)

            def tiles(ds: int = ds, lw: int = lw, lh: int = lh) -> Iterator[np.ndarray | bytes]:
                for ty in range(math.ceil(lh / tile_size)):
                    for tx in range(math.ceil(lw / tile_size)):
                        px = paint_tile(blobs, ds, (tx * tile_size, ty * tile_size), (tile_size, tile_size))
                        if not is_jpeg:
                            yield bg_tile if px is None else px
                        else:
                            yield bg_bytes if px is None else encode(px)

            tile_iter = tiles()
            if is_jpeg and jpeg_tables:
                first = next(tile_iter)  # encodes one tile so ``tables`` is known before the IFD is written
                tile_iter = _chain_first(first, tile_iter)
            tw.write(
                tile_iter,
                shape=(lh, lw, 3),
                dtype=np.uint8,
                tile=(tile_size, tile_size),
                compression=codec,
                photometric="rgb",
                subsampling=((2, 2) if photometric == "ycbcr" else (1, 1)) if is_jpeg else None,
                compressionargs={"outcolorspace": photometric} if is_jpeg else None,
                jpegtables=tables if is_jpeg and jpeg_tables else None,
                description=description if index == 0 and description else None,
                resolution=None if resolution is None else (resolution[0] / ds, resolution[1] / ds),
                resolutionunit="CENTIMETER" if resolution is not None else None,
                subfiletype=1 if index else 0,
                metadata=None,
                software=False,
            )
    return path


def _chain_first(first: np.ndarray | bytes, rest: Iterator[np.ndarray | bytes]) -> Iterator[np.ndarray | bytes]:
    yield first
    yield from rest


def write_plain_tiff(path: str | Path, size: tuple[int, int] = (8000, 7000), *, rowsperstrip: int = 16) -> Path:
    """Write a plain stripped (non-tiled) uncompressed RGB TIFF of ``size`` (w, h) px, e.g. a 56-megapixel scan.

    The strips are not written: the file is sparse (zero-filled, black), so it costs nothing to create even
    though it is w·h·3 bytes long, and any reader that decoded it would really have to read all of it.
    """
    path = Path(path)
    w, h = size
    tifffile.imwrite(
        path, shape=(h, w, 3), dtype=np.uint8, photometric="rgb", rowsperstrip=rowsperstrip,
        metadata=None, software=False, bigtiff=w * h * 3 > 2**31,
    )
    with path.open("r+b") as f:  # tifffile leaves the data unwritten; make the length what the tags promise
        f.seek(0, 2)
        if f.tell() < w * h * 3:
            f.truncate(f.tell() + w * h * 3)
    return path


def _photo(size: tuple[int, int]) -> Image.Image:
    w, h = size
    l0_x = np.arange(w, dtype=np.float32)[None, :] + 0.5
    l0_y = np.arange(h, dtype=np.float32)[:, None] + 0.5
    return Image.fromarray(stroma(l0_x, l0_y))


def write_png_photo(path: str | Path, size: tuple[int, int] = (640, 480)) -> Path:
    """Write an ordinary RGB PNG picture of ``size`` (w, h) px (not a whole-slide image)."""
    path = Path(path)
    _photo(size).save(path, "PNG")
    return path


def write_jpeg_photo(path: str | Path, size: tuple[int, int] = (640, 480)) -> Path:
    """Write an ordinary RGB JPEG picture of ``size`` (w, h) px, as a phone camera would (not a WSI)."""
    path = Path(path)
    buf = io.BytesIO()
    _photo(size).save(buf, "JPEG", quality=85)
    path.write_bytes(buf.getvalue())
    return path
