"""Tissue-tile grids at a requested objective magnification.

Coordinate spaces, named once (as in ``openslide.deepzoom``):

- ``l0_``: level-0 pixels of the slide (x right, y down).
- ``mag px``: pixels at the requested magnification; a tile is ``tile_size`` mag px square, and one mag
  px is ``downsample`` level-0 px.
- ``level``: the pyramid level the pixels are read from (the finest level not finer than needed);
  one level px is ``level_downsample`` level-0 px.
- ``tile_col, tile_row``: grid position, ``stride`` mag px apart.

Magnification comes from microns per pixel: ``mag = 10 / mpp`` (20× ≈ 0.5 µm/px, 40× ≈ 0.25 µm/px).
A slide without a usable mpp falls back to its objective power, and failing that to the pyramid itself
(level 0 taken as ``ASSUMED_LEVEL0_MAGNIFICATION``); the grid records which in ``scale_source`` and
``notes``. A magnification above the scan's is read at the scan's (never upsampled) and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from slides import Slide

MICRONS_AT_1X = 10.0
"""µm per pixel at 1× (a 10× eyepiece convention: 20× ≈ 0.5 µm/px, 40× ≈ 0.25 µm/px)."""

ASSUMED_LEVEL0_MAGNIFICATION = 20.0
"""Level-0 magnification assumed when a slide states neither mpp nor objective power."""


@dataclass(frozen=True)
class MagnificationScale:
    """How a requested magnification maps onto a slide.

    magnification: the magnification actually delivered (≤ the scan's).
    downsample: level-0 px per mag px (≥ 1).
    scale_source: "mpp", "objective-power" or "pyramid-fallback".
    """

    requested_magnification: float
    magnification: float
    downsample: float
    scale_source: str
    notes: tuple[str, ...] = ()


def level0_magnification(slide: Slide) -> tuple[float, str, tuple[str, ...]]:
    """(magnification of level 0, scale source, notes) from mpp, else objective power, else an assumption."""
    meta = slide.metadata
    if meta.mpp_x is not None:
        mpp = math.sqrt(meta.mpp_x * (meta.mpp_y or meta.mpp_x))
        return MICRONS_AT_1X / mpp, "mpp", ()
    if meta.objective_power:
        return float(meta.objective_power), "objective-power", (
            f"slide has no usable microns per pixel; level 0 taken as its objective power "
            f"{meta.objective_power:g}×",
        )
    return ASSUMED_LEVEL0_MAGNIFICATION, "pyramid-fallback", (
        "slide has no usable microns per pixel or objective power; magnifications are pyramid "
        f"downsamples with level 0 assumed to be {ASSUMED_LEVEL0_MAGNIFICATION:g}×",
    )


def magnification_scale(slide: Slide, magnification: float) -> MagnificationScale:
    """Map ``magnification`` (×) onto ``slide``; see the module docstring for the fallbacks."""
    if not magnification > 0:
        raise ValueError(f"magnification must be > 0, got {magnification!r}")
    l0_mag, source, notes = level0_magnification(slide)
    if magnification > l0_mag * 1.05:
        notes = (*notes, f"{magnification:g}× requested but the slide is scanned at {l0_mag:.3g}×; "
                         f"read at {l0_mag:.3g}×")
        return MagnificationScale(magnification, l0_mag, 1.0, source, notes)
    return MagnificationScale(magnification, magnification, max(1.0, l0_mag / magnification), source, notes)


@dataclass(frozen=True)
class TileGrid:
    """Tissue tiles of one slide at one magnification.

    l0_xy: ``(N, 2)`` int64 level-0 top-left corner of each tile.
    tile_cr: ``(N, 2)`` int64 (tile_col, tile_row) of each tile.
    tissue: ``(N,)`` float32 tissue fraction of each tile's footprint (0..1).
    tile_size, stride: mag px. downsample: level-0 px per mag px.
    level, level_downsample: the pyramid level read and its level-0 px per level px.
    l0_origin: level-0 (x, y) of tile (0, 0) (the ROI corner, or (0, 0)).
    grid_size: (tile_cols, tile_rows) of the full grid before the tissue filter.
    """

    scale: MagnificationScale
    tile_size: int
    stride: int
    level: int
    level_downsample: float
    l0_origin: tuple[int, int]
    grid_size: tuple[int, int]
    l0_xy: np.ndarray = field(repr=False)
    tile_cr: np.ndarray = field(repr=False)
    tissue: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return int(self.l0_xy.shape[0])

    @property
    def magnification(self) -> float:
        return self.scale.magnification

    @property
    def downsample(self) -> float:
        return self.scale.downsample

    @property
    def l0_tile_size(self) -> float:
        """Tile edge in level-0 px."""
        return self.tile_size * self.scale.downsample

    @property
    def read_size(self) -> int:
        """Tile edge in px at ``level`` (then resized to ``tile_size``)."""
        return max(1, round(self.l0_tile_size / self.level_downsample))

    def l0_boxes(self) -> np.ndarray:
        """``(N, 4)`` float64 level-0 boxes ``(x, y, w, h)``."""
        size = np.full((len(self), 2), self.l0_tile_size)
        return np.concatenate([self.l0_xy.astype(np.float64), size], axis=1)

    def subset(self, keep: np.ndarray) -> TileGrid:
        """The tiles selected by a boolean mask or an index array, in that order."""
        return replace(self, l0_xy=self.l0_xy[keep], tile_cr=self.tile_cr[keep], tissue=self.tissue[keep])

    def read_tile(self, slide: Slide, index: int) -> Image.Image:
        """Tile ``index`` as a ``tile_size``² RGB image (pixels past the slide edge come back as read)."""
        l0_x, l0_y = (int(v) for v in self.l0_xy[index])
        size = self.read_size
        image = slide.read_region((l0_x, l0_y), self.level, (size, size))
        if image.mode != "RGB":
            image = image.convert("RGB")
        if size != self.tile_size:
            image = image.resize((self.tile_size, self.tile_size), Image.Resampling.BILINEAR)
        return image

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary without the per-tile arrays."""
        return {
            "requested_magnification": self.scale.requested_magnification,
            "magnification": self.scale.magnification,
            "scale_source": self.scale.scale_source,
            "notes": list(self.scale.notes),
            "downsample": self.scale.downsample,
            "tile_size": self.tile_size,
            "stride": self.stride,
            "level": self.level,
            "level_downsample": self.level_downsample,
            "l0_tile_size": self.l0_tile_size,
            "grid_size": list(self.grid_size),
            "tiles": len(self),
        }


def _box_sums(integral: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    return integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]


def tile_tissue_fractions(
    l0_xy: np.ndarray, l0_tile_size: float, mask: np.ndarray, mask_downsample: float
) -> np.ndarray:
    """Tissue fraction ``(N,)`` of each level-0 tile footprint, from a boolean tissue mask.

    mask: ``(H, W)`` bool, one pixel = ``mask_downsample`` level-0 px. The part of a footprint outside the
    mask counts as background.
    """
    height, width = mask.shape
    integral = np.zeros((height + 1, width + 1), np.int64)
    integral[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    m_x0 = np.floor(l0_xy[:, 0] / mask_downsample).astype(np.int64)
    m_y0 = np.floor(l0_xy[:, 1] / mask_downsample).astype(np.int64)
    m_x1 = np.ceil((l0_xy[:, 0] + l0_tile_size) / mask_downsample).astype(np.int64)
    m_y1 = np.ceil((l0_xy[:, 1] + l0_tile_size) / mask_downsample).astype(np.int64)
    area = np.maximum((m_x1 - m_x0) * (m_y1 - m_y0), 1)
    sums = _box_sums(integral, np.clip(m_x0, 0, width), np.clip(m_y0, 0, height),
                     np.clip(m_x1, 0, width), np.clip(m_y1, 0, height))
    return (sums / area).astype(np.float32)


def tissue_tile_grid(
    slide: Slide,
    magnification: float,
    tile_size: int = 224,
    stride: int | None = None,
    *,
    min_tissue: float = 0.25,
    l0_roi: tuple[float, float, float, float] | None = None,
    tissue_mask: tuple[np.ndarray, float] | None = None,
) -> TileGrid:
    """Tiles of ``tile_size`` mag px every ``stride`` mag px (default: no overlap) with ≥ ``min_tissue`` tissue.

    l0_roi: restrict to level-0 ``(x, y, w, h)``; the grid starts at its corner. tissue_mask: a
    precomputed ``(mask, downsample)`` (else ``slides.detect_tissue`` is run). ``min_tissue=0`` keeps
    every tile. Edge tiles may reach past the slide edge, so even a slide smaller than one tile gets one.
    """
    if tile_size < 1:
        raise ValueError("tile_size must be >= 1")
    stride = tile_size if stride is None else int(stride)
    if stride < 1:
        raise ValueError("stride must be >= 1")
    scale = magnification_scale(slide, magnification)
    l0_tile = tile_size * scale.downsample
    l0_stride = stride * scale.downsample
    width, height = slide.dimensions
    if l0_roi is None:
        l0_x0, l0_y0, l0_w, l0_h = 0.0, 0.0, float(width), float(height)
    else:
        l0_x0, l0_y0 = max(0.0, float(l0_roi[0])), max(0.0, float(l0_roi[1]))
        l0_w = min(float(l0_roi[0]) + float(l0_roi[2]), width) - l0_x0
        l0_h = min(float(l0_roi[1]) + float(l0_roi[3]), height) - l0_y0
        if l0_w <= 0 or l0_h <= 0:
            raise ValueError(f"region {tuple(l0_roi)} lies outside the slide ({width}x{height} px)")
    cols = max(1, math.ceil((l0_w - l0_tile) / l0_stride) + 1) if l0_w > l0_tile else 1
    rows = max(1, math.ceil((l0_h - l0_tile) / l0_stride) + 1) if l0_h > l0_tile else 1
    tile_r, tile_c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    tile_cr = np.stack([tile_c.ravel(), tile_r.ravel()], axis=1).astype(np.int64)
    l0_xy = np.stack([l0_x0 + tile_cr[:, 0] * l0_stride, l0_y0 + tile_cr[:, 1] * l0_stride], axis=1)
    l0_xy = np.floor(l0_xy).astype(np.int64)

    if min_tissue > 0:
        if tissue_mask is None:
            from slides import detect_tissue

            detected = detect_tissue(slide)
            tissue_mask = (detected.mask, float(detected.downsample))
        tissue = tile_tissue_fractions(l0_xy, l0_tile, tissue_mask[0], tissue_mask[1])
    else:
        tissue = np.ones(len(l0_xy), np.float32)
    level = slide.best_level_for_downsample(scale.downsample)
    keep = tissue >= min_tissue
    return TileGrid(
        scale=scale,
        tile_size=int(tile_size),
        stride=stride,
        level=int(level),
        level_downsample=float(slide.level_downsamples[level]),
        l0_origin=(int(l0_x0), int(l0_y0)),
        grid_size=(cols, rows),
        l0_xy=l0_xy[keep],
        tile_cr=tile_cr[keep],
        tissue=tissue[keep],
    )
