"""DeepZoom pyramid over a Slide, laid out exactly as ``openslide.deepzoom.DeepZoomGenerator`` lays it out.

Coordinate spaces (named as in openslide's deepzoom.py):
- ``tile_col``/``tile_row``: tile address within a DeepZoom level (``t_``);
- ``z_``: pixels of a DeepZoom level (``dz_level``; the last level is level 0 of the slide, each one
  before it half the size, down to 1×1);
- ``l_``: pixels of a slide level (``level``); ``l0_``: level-0 pixels.

Rendering: a DeepZoom level whose downsample is a slide level's times 2^k is read with the JPEG fast path
(``slides.fastjpeg``) when the file allows, decoding at 1/2^k in the DCT domain, so the levels between
native ones cost about as much as native ones. Everything else goes through OpenSlide, with a box filter
(``Image.reduce``) for whole-number factors and LANCZOS otherwise.
"""

from __future__ import annotations

import io
import math
from xml.etree.ElementTree import Element, SubElement, tostring

import openslide
from PIL import Image

from slides.errors import TileNotFound
from slides.fastjpeg import SCALES, FastPathError
from slides.slide import Slide

#: Two downsamples within this relative difference count as equal (real pyramids are rarely exact:
#: 46000 px / 11500 px = 4 but 32914 px / 8228 px = 4.0002).
_DS_TOLERANCE = 2e-3


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= _DS_TOLERANCE * b


class DeepZoom:
    """DeepZoom tiles of ``slide``: ``tile_size`` px tiles plus ``overlap`` px on each inner edge.

    limit_bounds: only the scanned area (OpenSlide's bounds properties), for formats that have one.
    The Slide is borrowed, not owned: closing it is the caller's business.
    """

    def __init__(self, slide: Slide, tile_size: int = 254, overlap: int = 1, limit_bounds: bool = False) -> None:
        if tile_size <= 0 or overlap < 0:
            raise ValueError("tile_size must be > 0 and overlap >= 0")
        self.slide = slide
        self.tile_size = tile_size
        self.overlap = overlap
        self.limit_bounds = limit_bounds
        props = slide.metadata.properties
        l0_w, l0_h = slide.dimensions
        if limit_bounds:
            self._l0_offset = (
                int(props.get(openslide.PROPERTY_NAME_BOUNDS_X, 0)),
                int(props.get(openslide.PROPERTY_NAME_BOUNDS_Y, 0)),
            )
            scale_x = int(props.get(openslide.PROPERTY_NAME_BOUNDS_WIDTH, l0_w)) / l0_w
            scale_y = int(props.get(openslide.PROPERTY_NAME_BOUNDS_HEIGHT, l0_h)) / l0_h
            self._l_dimensions = tuple(
                (math.ceil(l_w * scale_x), math.ceil(l_h * scale_y)) for l_w, l_h in slide.level_dimensions
            )
        else:
            self._l0_offset = (0, 0)
            self._l_dimensions = slide.level_dimensions
        z_size = self._l_dimensions[0]
        z_dimensions = [z_size]
        while z_size[0] > 1 or z_size[1] > 1:
            z_size = (max(1, math.ceil(z_size[0] / 2)), max(1, math.ceil(z_size[1] / 2)))
            z_dimensions.append(z_size)
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(reversed(z_dimensions))
        """(w, h) px of each DeepZoom level, smallest (1×1) first."""
        self.level_tiles: tuple[tuple[int, int], ...] = tuple(
            (math.ceil(z_w / tile_size), math.ceil(z_h / tile_size)) for z_w, z_h in self.level_dimensions
        )
        """(columns, rows) of tiles of each DeepZoom level."""
        self.level_count = len(self.level_dimensions)
        self.tile_count = sum(cols * rows for cols, rows in self.level_tiles)
        l0_z_downsamples = [2.0 ** (self.level_count - 1 - dz_level) for dz_level in range(self.level_count)]
        # like OpenSlide's best-level rule, but a level a hair coarser than asked still counts
        self._slide_from_dz_level = tuple(
            slide.best_level_for_downsample(ds * (1 + _DS_TOLERANCE)) for ds in l0_z_downsamples
        )
        self._l_z_downsamples = tuple(
            l0_z_downsamples[dz] / slide.level_downsamples[self._slide_from_dz_level[dz]]
            for dz in range(self.level_count)
        )

    def __repr__(self) -> str:
        return f"DeepZoom({self.slide!r}, tile_size={self.tile_size}, overlap={self.overlap})"

    def get_dzi(self, format: str = "jpeg") -> str:  # noqa: A002 - the DZI attribute's name
        """The .dzi XML document describing this pyramid; ``format`` is the tile file type ("jpeg", "png")."""
        image = Element(
            "Image",
            TileSize=str(self.tile_size),
            Overlap=str(self.overlap),
            Format=format,
            xmlns="http://schemas.microsoft.com/deepzoom/2008",
        )
        l0_w, l0_h = self._l_dimensions[0]
        SubElement(image, "Size", Width=str(l0_w), Height=str(l0_h))
        return '<?xml version="1.0" encoding="UTF-8"?>' + tostring(image, encoding="unicode")

    def _tile_geometry(
        self, dz_level: int, tile_col: int, tile_row: int
    ) -> tuple[int, tuple[float, float], tuple[int, int], tuple[int, int]]:
        """(slide level, l_ origin, l_ size to read, z_ size of the tile) — openslide's arithmetic."""
        if not 0 <= dz_level < self.level_count:
            raise TileNotFound(f"DeepZoom level {dz_level} does not exist (levels 0–{self.level_count - 1})")
        cols, rows = self.level_tiles[dz_level]
        if not (0 <= tile_col < cols and 0 <= tile_row < rows):
            raise TileNotFound(
                f"tile ({tile_col}, {tile_row}) is outside DeepZoom level {dz_level} ({cols}×{rows} tiles)"
            )
        level = self._slide_from_dz_level[dz_level]
        l_z_ds = self._l_z_downsamples[dz_level]
        z_w, z_h = self.level_dimensions[dz_level]
        l_w, l_h = self._l_dimensions[level]
        z_tl = (self.overlap * (tile_col != 0), self.overlap * (tile_row != 0))
        z_br = (self.overlap * (tile_col != cols - 1), self.overlap * (tile_row != rows - 1))
        z_size = (
            min(self.tile_size, z_w - self.tile_size * tile_col) + z_tl[0] + z_br[0],
            min(self.tile_size, z_h - self.tile_size * tile_row) + z_tl[1] + z_br[1],
        )
        l_loc = (
            l_z_ds * (self.tile_size * tile_col - z_tl[0]),
            l_z_ds * (self.tile_size * tile_row - z_tl[1]),
        )
        l_size = (
            int(min(math.ceil(l_z_ds * z_size[0]), l_w - math.ceil(l_loc[0]))),
            int(min(math.ceil(l_z_ds * z_size[1]), l_h - math.ceil(l_loc[1]))),
        )
        return level, l_loc, l_size, z_size

    def get_tile(self, dz_level: int, address: tuple[int, int]) -> Image.Image:
        """RGB tile at ``address`` = (tile_col, tile_row) of DeepZoom level ``dz_level``.

        Raises TileNotFound for an address outside the pyramid, SlideError if the pixels cannot be read.
        """
        tile_col, tile_row = address
        level, l_loc, l_size, z_size = self._tile_geometry(dz_level, tile_col, tile_row)
        level_ds = self.slide.level_downsamples[level]
        l0_xy = (
            int(level_ds * l_loc[0] + self._l0_offset[0]),
            int(level_ds * l_loc[1] + self._l0_offset[1]),
        )
        tile = self._fast_tile(level, l0_xy, self._l_z_downsamples[dz_level], z_size)
        if tile is not None:
            return tile
        tile = self.slide.read_region(l0_xy, level, (max(1, l_size[0]), max(1, l_size[1])))
        if tile.size != z_size:
            factor = self._l_z_downsamples[dz_level]
            whole = round(factor)
            if whole >= 2 and _near(factor, whole):
                tile = tile.reduce(whole)
            if tile.size != z_size:
                tile = tile.resize(z_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        return tile

    def _fast_tile(
        self, level: int, l0_xy: tuple[int, int], l_z_ds: float, z_size: tuple[int, int]
    ) -> Image.Image | None:
        """The tile through the JPEG fast path, or None where it does not apply."""
        reader = self.slide.jpeg_reader()
        if reader is None or not reader.covers(level):
            return None
        power = round(math.log2(l_z_ds)) if l_z_ds >= 1 - _DS_TOLERANCE else -1
        if power < 0 or not _near(l_z_ds, 2.0**power):
            return None
        scale = min(2**power, SCALES[-1])
        box_factor = 2**power // scale  # what the DCT scaling cannot do, a box filter does
        v_ds = self.slide.level_downsamples[level] * scale  # level-0 px per virtual px
        v_box = (
            round(l0_xy[0] / v_ds),
            round(l0_xy[1] / v_ds),
            z_size[0] * box_factor,
            z_size[1] * box_factor,
        )
        l_w, l_h = self.slide.level_dimensions[level]
        if v_box[0] + v_box[2] > l_w / scale + box_factor or v_box[1] + v_box[3] > l_h / scale + box_factor:
            # the DeepZoom level rounds up to more than a pixel beyond the slide level (tiny levels):
            # OpenSlide's path stretches the real pixels over the tile instead of padding with white
            return None
        try:
            tile = reader.read(level, scale, v_box)
        except FastPathError:
            return None  # let OpenSlide decode it, and report the damage if it fails too
        return tile.reduce(box_factor) if box_factor > 1 else tile

    def get_tile_jpeg(self, dz_level: int, tile_col: int, tile_row: int, quality: int = 80) -> bytes:
        """The tile encoded as baseline JPEG at ``quality`` (1–95)."""
        tile = self.get_tile(dz_level, (tile_col, tile_row))
        buf = io.BytesIO()
        tile.save(buf, "JPEG", quality=quality)
        return buf.getvalue()

    def get_tile_png(self, dz_level: int, tile_col: int, tile_row: int) -> bytes:
        """The tile encoded as PNG (lossless, larger)."""
        tile = self.get_tile(dz_level, (tile_col, tile_row))
        buf = io.BytesIO()
        tile.save(buf, "PNG")
        return buf.getvalue()

