"""QuPath GeoJSON: read an export into checked features, write annotations back as QuPath writes them.

Accepted inputs (all seen in real exports, see ../shared/testdata/annotations/SOURCES.md):
- a FeatureCollection (QuPath 0.4+, compact or pretty), a bare array of Features (QuPath ≤ 0.3),
  or a single Feature;
- `properties.objectType` or the older `properties.object_type`: annotation, detection, cell, tile;
  a cell's nucleus in the Feature's `nucleusGeometry` member;
- `properties.classification` as `{"name", "color"}`, `{"names": [...], "color"}` (derived classes)
  or a bare string; `name` is the object's own name, not its class;
- colours as `[r, g, b]` or a packed integer (`colorRGB`).
No Django here: `webapp.annotations.services.import_features` stores what `read_features` returns.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from webapp.annotations.geometry import BBox, CleanGeometry, GeometryError, clean_geometry, validate_polygonal

OBJECT_TYPES = ("annotation", "detection", "cell", "tile")
_OWN_PROPERTIES = {"objectType", "object_type", "classification", "name"}


class QuPathImportError(ValueError):
    """The file is refused as a whole; `feature` is the index of the offending feature, if one is."""

    def __init__(self, message: str, feature: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.feature = feature


@dataclass
class Classification:
    name: str
    color: str | None  # "#rrggbb"


@dataclass
class ParsedFeature:
    geometry: dict
    bbox: BBox
    object_type: str
    uuid: uuid.UUID | None
    name: str
    classification: Classification | None
    nucleus_geometry: dict | None
    extra_properties: dict = field(default_factory=dict)
    repaired: str | None = None
    shape: object = field(default=None, repr=False)  # polygon(s) awaiting the validity check


def loads(raw: bytes) -> object:
    """Parse JSON strictly: NaN and Infinity are not JSON and are refused."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not a valid JSON number")

    try:
        return json.loads(raw, parse_constant=refuse)
    except UnicodeDecodeError:
        raise QuPathImportError("the file is not UTF-8 text") from None
    except ValueError as exc:
        raise QuPathImportError(f"invalid JSON: {exc}") from None


def read_features(
    document: object, *, width: float | None, height: float | None, max_vertices: int, max_features: int,
    max_total_vertices: int,
) -> list[ParsedFeature]:
    """Check every feature of a parsed QuPath export; the first problem raises QuPathImportError."""
    features = _feature_list(document)
    if len(features) > max_features:
        raise QuPathImportError(f"the file has {len(features)} features; the limit is {max_features}")
    parsed = []
    total = 0
    for index, feature in enumerate(features):
        try:
            item = _read_feature(feature, width, height, max_vertices)
        except GeometryError as exc:
            raise QuPathImportError(f"feature {index}: {exc}", index) from None
        total += _count_positions(item.geometry) + (_count_positions(item.nucleus_geometry) if item.nucleus_geometry else 0)
        if total > max_total_vertices:
            raise QuPathImportError(f"feature {index}: the file has more than {max_total_vertices} positions", index)
        parsed.append(item)
    _check_polygons(parsed)
    return parsed


def _check_polygons(parsed: list[ParsedFeature]) -> None:
    """Polygon validity for the whole file in one pass; repairs replace the geometry."""
    indices = [i for i, item in enumerate(parsed) if item.shape is not None]
    cleans = [CleanGeometry(parsed[i].geometry, parsed[i].bbox, shape=parsed[i].shape) for i in indices]
    for index, result in zip(indices, validate_polygonal(cleans), strict=True):
        if isinstance(result, GeometryError):
            raise QuPathImportError(f"feature {index}: {result}", index)
        item = parsed[index]
        item.geometry, item.bbox, item.repaired, item.shape = result.geometry, result.bbox, result.repaired, None


def _feature_list(document: object) -> list:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        kind = document.get("type")
        if kind == "FeatureCollection":
            features = document.get("features")
            if not isinstance(features, list):
                raise QuPathImportError("the FeatureCollection has no 'features' array")
            return features
        if kind == "Feature":
            return [document]
        raise QuPathImportError(
            f"expected a GeoJSON FeatureCollection, Feature or array of Features, got type {kind!r}"
        )
    raise QuPathImportError(f"expected a GeoJSON FeatureCollection, got a JSON {type(document).__name__}")


def _read_feature(feature: object, width: float | None, height: float | None, max_vertices: int) -> ParsedFeature:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise GeometryError("not a GeoJSON Feature (an object with \"type\": \"Feature\")")
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        raise GeometryError("'properties' must be an object")
    if feature.get("geometry") is None:
        raise GeometryError("the feature has no geometry")
    clean = clean_geometry(feature["geometry"], width=width, height=height, max_vertices=max_vertices,
                           check_validity=False)

    object_type = properties.get("objectType", properties.get("object_type", "annotation"))
    if object_type not in OBJECT_TYPES:
        raise GeometryError(f"objectType {object_type!r} is not one of {', '.join(OBJECT_TYPES)}")
    nucleus = None
    if feature.get("nucleusGeometry") is not None:
        if object_type != "cell":
            raise GeometryError("only cells have a nucleusGeometry")
        nucleus_clean = clean_geometry(feature["nucleusGeometry"], width=width, height=height, max_vertices=max_vertices)
        if nucleus_clean.geometry["type"] not in ("Polygon", "MultiPolygon"):
            raise GeometryError("nucleusGeometry must be a Polygon or MultiPolygon")
        nucleus = nucleus_clean.geometry

    name = properties.get("name", "")
    if not isinstance(name, str) or len(name) > 200:
        raise GeometryError("'name' must be text of at most 200 characters")
    return ParsedFeature(
        geometry=clean.geometry,
        bbox=clean.bbox,
        object_type=object_type,
        uuid=_uuid(feature.get("id")),
        name=name,
        classification=_classification(properties.get("classification")),
        nucleus_geometry=nucleus,
        extra_properties={k: v for k, v in properties.items() if k not in _OWN_PROPERTIES},
        shape=clean.shape,
    )


def _classification(value: object) -> Classification | None:
    if value is None:
        return None
    if isinstance(value, str):
        name, color = value, None
    elif isinstance(value, dict):
        names = value.get("names")
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            name = ": ".join(names)
        else:
            name = value.get("name")
        color = color_to_hex(value.get("color", value.get("colorRGB")))
    else:
        raise GeometryError("'classification' must be an object with a name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise GeometryError("the classification needs a name of 1 to 100 characters")
    return Classification(name.strip(), color)


def color_to_hex(value: object) -> str | None:
    """QuPath colours: [r, g, b] or a packed (A)RGB integer → "#rrggbb"; None if absent or unreadable."""
    if isinstance(value, list) and len(value) >= 3 and all(type(c) is int and 0 <= c <= 255 for c in value[:3]):
        r, g, b = value[:3]
    elif type(value) is int:
        r, g, b = (value >> 16) & 255, (value >> 8) & 255, value & 255
    else:
        return None
    return f"#{r:02x}{g:02x}{b:02x}"


def _uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return None
    return None


def _count_positions(geometry: dict) -> int:
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        return 1
    if kind in ("MultiPoint", "LineString"):
        return len(coords)
    if kind == "Polygon":
        return sum(len(ring) for ring in coords)
    return sum(len(ring) for part in coords for ring in part)


def to_feature(annotation, label) -> dict:
    """One annotation as QuPath (0.4+) writes it. `label` is its Label or None."""
    properties = dict(annotation.qupath_properties or {})
    properties["objectType"] = annotation.object_type
    if annotation.name:
        properties["name"] = annotation.name
    if label is not None:
        properties["classification"] = {"name": label.name, "color": label.rgb}
    feature = {"type": "Feature", "id": str(annotation.uuid), "geometry": annotation.geometry}
    if annotation.nucleus_geometry is not None:
        feature["nucleusGeometry"] = annotation.nucleus_geometry
    feature["properties"] = properties
    return feature
