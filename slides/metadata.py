"""Normalised, read-only slide metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import openslide

#: Plausible microscope calibration, level-0 µm per pixel. Below 0.05 µm/px is beyond optical
#: resolution; above 50 µm/px is not a microscope scan. The upper bound rejects the 72-dpi TIFF
#: resolution tag (25400 / 72 ≈ 352.8 µm/px) that generic TIFF writers put in by default, while keeping
#: low-magnification DICOM series such as testdata's jpeg.dicom (16.78 µm/px).
MPP_RANGE = (0.05, 50.0)

#: Plausible objective magnification (×).
OBJECTIVE_RANGE = (0.5, 200.0)

#: Scanner maker by OpenSlide format, where the format implies it.
_VENDOR_BY_FORMAT = {
    "aperio": "Leica Aperio",
    "hamamatsu": "Hamamatsu",
    "leica": "Leica",
    "mirax": "3DHISTECH",
    "philips": "Philips",
    "sakura": "Sakura",
    "trestle": "Trestle",
    "ventana": "Roche Ventana",
    "zeiss": "Zeiss",
}


@dataclass(frozen=True)
class SlideMetadata:
    """What a slide file says about itself, normalised across formats.

    format: OpenSlide format name ("aperio", "hamamatsu", "mirax", "generic-tiff", "dicom", …).
    vendor: scanner maker when known ("Leica Aperio", "Hamamatsu", a DICOM Manufacturer), else None.
    width, height: level-0 size in px. level_dimensions: (w, h) px per level, finest first.
    level_downsamples: level-0 px per level px, per level (1.0 first).
    mpp_x, mpp_y: level-0 µm/px, or None (both) when absent or outside ``MPP_RANGE``.
    objective_power: scan magnification (×), or None when absent or implausible.
    associated_images: names of non-pyramid pictures ("label", "macro", "thumbnail", …).
    tile_hint: (w, h) px of the file's native level-0 tiles, if it declares them.
    properties: every OpenSlide property, read-only (not compared, not hashed).
    """

    format: str
    vendor: str | None
    width: int
    height: int
    level_count: int
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp_x: float | None
    mpp_y: float | None
    objective_power: float | None
    associated_images: tuple[str, ...]
    tile_hint: tuple[int, int] | None = None
    properties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    @property
    def mpp_known(self) -> bool:
        """True when the slide carries a plausible microscope calibration."""
        return self.mpp_x is not None

    def to_dict(self, *, properties: bool = False) -> dict[str, Any]:
        """JSON-ready dict of the normalised fields (lists for tuples); ``properties=True`` adds them all."""
        out: dict[str, Any] = {
            "format": self.format,
            "vendor": self.vendor,
            "width": self.width,
            "height": self.height,
            "level_count": self.level_count,
            "level_dimensions": [list(d) for d in self.level_dimensions],
            "level_downsamples": list(self.level_downsamples),
            "mpp_x": self.mpp_x,
            "mpp_y": self.mpp_y,
            "objective_power": self.objective_power,
            "associated_images": list(self.associated_images),
            "tile_hint": list(self.tile_hint) if self.tile_hint else None,
        }
        if properties:
            out["properties"] = dict(self.properties)
        return out


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _in_range(value: float | None, bounds: tuple[float, float]) -> float | None:
    return value if value is not None and bounds[0] <= value <= bounds[1] else None


def metadata_from_openslide(osr: openslide.OpenSlide) -> SlideMetadata:
    """Normalise an open OpenSlide handle's properties (no pixel reads)."""
    props = dict(osr.properties)
    fmt = props.get(openslide.PROPERTY_NAME_VENDOR) or "unknown"
    mpp_x = _in_range(_float(props.get(openslide.PROPERTY_NAME_MPP_X)), MPP_RANGE)
    mpp_y = _in_range(_float(props.get(openslide.PROPERTY_NAME_MPP_Y)), MPP_RANGE)
    if mpp_x is None or mpp_y is None:  # a calibration on one axis only is not one we can trust
        mpp_x = mpp_y = None
    objective = _in_range(_float(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)), OBJECTIVE_RANGE)
    vendor = _VENDOR_BY_FORMAT.get(fmt) or props.get("dicom.Manufacturer") or props.get("tiff.Make") or None
    tile_w = props.get("openslide.level[0].tile-width")
    tile_h = props.get("openslide.level[0].tile-height")
    tile_hint = (int(tile_w), int(tile_h)) if tile_w and tile_h and tile_w.isdigit() and tile_h.isdigit() else None
    width, height = osr.dimensions
    return SlideMetadata(
        format=fmt,
        vendor=vendor,
        width=int(width),
        height=int(height),
        level_count=int(osr.level_count),
        level_dimensions=tuple((int(w), int(h)) for w, h in osr.level_dimensions),
        level_downsamples=tuple(float(d) for d in osr.level_downsamples),
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        objective_power=objective,
        associated_images=tuple(sorted(osr.associated_images)),
        tile_hint=tile_hint,
        properties=MappingProxyType(props),
    )
