"""GeoJSON geometry checks for annotations, in level-0 pixel coordinates (x right, y down, origin top-left).

`clean_geometry` is the one entry point: it validates a GeoJSON geometry object, normalises ring
direction, repairs self-intersecting polygons where that is unambiguous, and returns the bounding box.
No Django here: the REST API and the QuPath importer both call it.

Ring direction: QuPath ignores GeoJSON's winding rule, so real exports mix both directions. We store
RFC 7946's convention computed on the raw numbers: exterior rings have a positive shoelace area,
holes a negative one. Reversing a closed ring keeps its first position, so a ring reads back either
exactly as written or reversed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import shapely
from shapely.geometry import Polygon, mapping

GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "Polygon", "MultiPolygon")
POLYGONAL = ("Polygon", "MultiPolygon")
# Extent classes: an annotation of class c is at most 2**c px wide and tall (see `extent_class`).
MIN_EXTENT_CLASS = 4
MAX_EXTENT_CLASS = 20
_NUMBERS = {int, float}


class GeometryError(ValueError):
    """A geometry that cannot be stored; the message says what is wrong, for a person."""


@dataclass(frozen=True)
class BBox:
    """Level-0 pixel bounding box, inclusive."""

    min_x: float
    min_y: float
    max_x: float
    max_y: float

    @property
    def extent_class(self) -> int:
        return extent_class(self.max_x - self.min_x, self.max_y - self.min_y)


@dataclass(frozen=True)
class CleanGeometry:
    geometry: dict
    bbox: BBox
    repaired: str | None = None  # why the geometry was changed, when it was
    shape: object = field(default=None, repr=False, compare=False)  # shapely polygon(s) awaiting validity check


def extent_class(width: float, height: float) -> int:
    """Smallest c (clamped to [MIN_EXTENT_CLASS, MAX_EXTENT_CLASS]) with 2**c ≥ max(width, height).

    Viewport queries use it to bound `min_x`/`min_y` from below: an annotation of class c that reaches
    into a viewport starting at x0 starts at or after x0 - 2**c. The top class has no bound.
    """
    size = max(width, height, 1.0)
    return max(MIN_EXTENT_CLASS, min(MAX_EXTENT_CLASS, math.ceil(math.log2(size))))


def clean_geometry(
    obj: object, *, width: float | None = None, height: float | None = None, max_vertices: int = 100_000,
    check_validity: bool = True,
) -> CleanGeometry:
    """Validate one GeoJSON geometry against a slide of `width` × `height` level-0 px (None: unknown).

    Raises GeometryError with a reason. Polygons come back with normalised ring direction; an
    invalid polygon (self-intersection, ...) is repaired into valid polygonal parts or refused.
    With `check_validity=False` that last step is left to a later `validate_polygonal` over many
    geometries at once (imports); `shape` then holds the unchecked polygon.
    """
    if not isinstance(obj, dict):
        raise GeometryError("geometry must be a GeoJSON object")
    kind = obj.get("type")
    if kind not in GEOMETRY_TYPES:
        allowed = ", ".join(GEOMETRY_TYPES)
        raise GeometryError(f"geometry type {kind!r} is not supported; use one of {allowed}")
    coordinates = obj.get("coordinates")
    if not isinstance(coordinates, list):
        raise GeometryError(f"{kind} coordinates must be an array")
    checker = _Checker(width, height, max_vertices)
    shape = None
    if kind == "Point":
        coords = checker.position(coordinates)
    elif kind == "MultiPoint":
        coords, _ = checker.positions(coordinates, minimum=1, what="MultiPoint")
    elif kind == "LineString":
        coords, _ = checker.positions(coordinates, minimum=2, what="LineString")
    elif kind == "Polygon":
        coords, shape = checker.polygon(coordinates, "Polygon")
    else:
        if not coordinates:
            raise GeometryError("MultiPolygon has no polygons")
        parts = [checker.polygon(part, f"MultiPolygon part {i}") for i, part in enumerate(coordinates)]
        coords = [rings for rings, _ in parts]
        shape = shapely.multipolygons([polygon for _, polygon in parts])
    geometry = {"type": kind, "coordinates": coords}
    bbox = BBox(checker.min_x, checker.min_y, checker.max_x, checker.max_y)
    clean = CleanGeometry(geometry, bbox, shape=shape)
    if shape is None or not check_validity:
        return clean
    result = validate_polygonal([clean])[0]
    if isinstance(result, GeometryError):
        raise result
    return result


class _Checker:
    """Walks positions once: types, finiteness, bounds, count, bounding box.

    Rings and position lists are checked with numpy first; only a list that fails there is walked
    position by position, to name the offending position in the error.
    """

    def __init__(self, width: float | None, height: float | None, max_vertices: int) -> None:
        self.width = width
        self.height = height
        self.max_vertices = max_vertices
        self.count = 0
        self.min_x = self.min_y = math.inf
        self.max_x = self.max_y = -math.inf

    def position(self, value: object) -> list:
        if not isinstance(value, list) or len(value) != 2:
            raise GeometryError(f"a position must be [x, y], got {_short(value)}")
        x, y = value
        if type(x) not in _NUMBERS or type(y) not in _NUMBERS:
            raise GeometryError(f"coordinates must be numbers, got {_short(value)}")
        if not (math.isfinite(x) and math.isfinite(y)):
            raise GeometryError(f"coordinates must be finite numbers, got {_short(value)}")
        if x < 0 or y < 0 or (self.width is not None and x > self.width) or (
            self.height is not None and y > self.height
        ):
            size = f"{self.width:g} × {self.height:g} px" if self.width is not None else "the slide"
            raise GeometryError(f"position [{x:g}, {y:g}] lies outside the slide ({size}, origin top-left)")
        self._count(1)
        self.min_x = min(self.min_x, x)
        self.max_x = max(self.max_x, x)
        self.min_y = min(self.min_y, y)
        self.max_y = max(self.max_y, y)
        return value

    def _count(self, n: int) -> None:
        self.count += n
        if self.count > self.max_vertices:
            raise GeometryError(f"the geometry has more than {self.max_vertices} positions")

    def positions(self, value: object, *, minimum: int, what: str) -> tuple[list, np.ndarray]:
        """The positions as given and as an (N, 2) float array."""
        if not isinstance(value, list):
            raise GeometryError(f"{what} coordinates must be an array of positions")
        if len(value) < minimum:
            raise GeometryError(f"{what} needs at least {minimum} positions, got {len(value)}")
        if len(value) > self.max_vertices:
            raise GeometryError(f"the geometry has more than {self.max_vertices} positions")
        array = self._fast(value)
        if array is None:
            value = [self.position(p) for p in value]
            array = np.asarray(value, dtype=np.float64)
        return value, array

    def _fast(self, value: list) -> np.ndarray | None:
        try:
            array = np.array(value, dtype=np.float64)
        except (ValueError, TypeError):
            return None
        # numpy would also take "6" and True as numbers: JSON's own types are checked here.
        if array.ndim != 2 or array.shape[1] != 2 or not _NUMBERS.issuperset(map(type, chain.from_iterable(value))):
            return None
        if not np.isfinite(array).all():
            return None
        (min_x, min_y), (max_x, max_y) = array.min(axis=0).tolist(), array.max(axis=0).tolist()
        if min_x < 0 or min_y < 0 or (self.width is not None and max_x > self.width) or (
            self.height is not None and max_y > self.height
        ):
            return None
        self._count(len(value))
        self.min_x, self.min_y = min(self.min_x, min_x), min(self.min_y, min_y)
        self.max_x, self.max_y = max(self.max_x, max_x), max(self.max_y, max_y)
        return array

    def polygon(self, rings: object, what: str) -> tuple[list, Polygon]:
        """Rings with normalised direction, and the shapely polygon (not yet checked for validity)."""
        if not isinstance(rings, list) or not rings:
            raise GeometryError(f"{what} must be a non-empty array of rings")
        out, arrays = [], []
        for index, ring in enumerate(rings):
            name = f"{what} ring {index}"
            ring, array = self.positions(ring, minimum=4, what=name)
            if ring[0] != ring[-1]:
                raise GeometryError(f"{name} is not closed: its first and last positions differ")
            area = _signed_area(array)
            # Exterior positive, holes negative (RFC 7946 on the raw numbers).
            if (index == 0 and area < 0) or (index > 0 and area > 0):
                ring, array = ring[::-1], array[::-1]
            out.append(ring)
            arrays.append(array)
        holes = [shapely.linearrings(a) for a in arrays[1:]] or None
        return out, shapely.polygons(arrays[0], holes=holes)


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])) / 2


def validate_polygonal(cleans: list[CleanGeometry]) -> list[CleanGeometry | GeometryError]:
    """Check polygon validity for many geometries at once (one GEOS call); repair the invalid ones.

    Each result is the geometry (repaired where needed) or the GeometryError that refuses it.
    """
    shapes = [c.shape for c in cleans]
    valid = shapely.is_valid(np.array(shapes, dtype=object)) if shapes else []
    out: list[CleanGeometry | GeometryError] = []
    for clean, ok in zip(cleans, valid, strict=True):
        if ok:
            out.append(CleanGeometry(clean.geometry, clean.bbox))
            continue
        try:
            out.append(_repair(clean))
        except GeometryError as exc:
            out.append(exc)
    return out


def _repair(clean: CleanGeometry) -> CleanGeometry:
    reason = shapely.is_valid_reason(clean.shape)
    repaired = shapely.make_valid(clean.shape, method="structure", keep_collapsed=False)
    if repaired.is_empty or repaired.geom_type not in POLYGONAL or repaired.area <= 0:
        raise GeometryError(f"invalid polygon that cannot be repaired: {reason}")
    fixed = shapely.orient_polygons(repaired, exterior_cw=False)
    out = mapping(fixed)
    fixed_geometry = {"type": out["type"], "coordinates": _lists(out["coordinates"])}
    min_x, min_y, max_x, max_y = fixed.bounds
    return CleanGeometry(fixed_geometry, BBox(min_x, min_y, max_x, max_y), repaired=f"repaired: {reason}")


def _lists(value):
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (int, float)):
        return [float(v) for v in value]
    return [_lists(v) for v in value]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
