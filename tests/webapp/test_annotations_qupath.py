"""QuPath GeoJSON: real exports round-trip; malformed files are refused whole, naming the feature."""

from __future__ import annotations

import json

import pytest

from tests.conftest import shared_testdata
from tests.webapp.annotations_support import (
    all_annotations,
    collection,
    feature,
    import_geojson,
    make_slide,
    square,
)

pytestmark = pytest.mark.django_db(transaction=True)

REAL_EXPORTS = ["qupath05.geojson", "exemplar001-subset.geojson", "qupath-0.3-array.geojson"]


def _features(document) -> list[dict]:
    return document if isinstance(document, list) else document["features"]


def _same_ring(exported: list, original: list) -> bool:
    # QuPath ignores GeoJSON's winding rule, so a ring may come back reversed (same first position).
    return exported == original or exported == original[::-1]


@pytest.fixture
def slide(people):
    return make_slide(people.department, width=12_000, height=8_000)


@pytest.mark.parametrize("name", REAL_EXPORTS)
def test_a_real_export_round_trips(people, slide, name):
    raw = shared_testdata("annotations", name).read_bytes()
    original = _features(json.loads(raw))
    client = people.admin.client  # classifications unknown to the department: admins create the labels
    imported = import_geojson(client, slide.pk, raw)
    assert imported.status_code == 201, imported.text
    assert imported.json()["created"] == len(original)
    assert imported.json()["repaired"] == []

    response = client.get(f"/api/slides/{slide.pk}/annotations.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    exported = response.json()
    assert exported["type"] == "FeatureCollection"
    assert len(exported["features"]) == len(original)
    for before, after in zip(original, exported["features"], strict=True):
        assert after["geometry"]["type"] == before["geometry"]["type"]
        rings_before, rings_after = before["geometry"]["coordinates"], after["geometry"]["coordinates"]
        assert len(rings_after) == len(rings_before)
        assert all(_same_ring(a, b) for a, b in zip(rings_after, rings_before, strict=True))
        props_before, props_after = before["properties"], after["properties"]
        assert props_after["objectType"] == props_before.get("objectType", props_before.get("object_type"))
        assert props_after.get("classification") == props_before.get("classification")
        assert props_after.get("name") == props_before.get("name")
        assert props_after.get("color") == props_before.get("color")
        if "id" in before:
            assert after["id"] == before["id"]

    # The export imports again unchanged: the same geometries and classes on a second slide.
    again = make_slide(people.department, width=12_000, height=8_000)
    assert import_geojson(client, again.pk, response.content).status_code == 201
    second = client.get(f"/api/slides/{again.pk}/annotations.geojson").json()
    assert [f["geometry"] for f in second["features"]] == [f["geometry"] for f in exported["features"]]
    assert [f["properties"] for f in second["features"]] == [f["properties"] for f in exported["features"]]


def test_the_exemplar_fits_its_own_image_exactly(people):
    raw = shared_testdata("annotations", "exemplar001-subset.geojson").read_bytes()
    fits = make_slide(people.department, width=1833, height=957)  # one polygon touches y = 957
    assert import_geojson(people.admin.client, fits.pk, raw).status_code == 201
    smaller = make_slide(people.department, width=1833, height=956)
    refused = import_geojson(people.admin.client, smaller.pk, raw)
    assert refused.status_code == 400
    assert refused.json()["feature"] == 4
    assert "outside the slide" in refused.json()["error"]
    assert all_annotations(people.admin.client, smaller.pk) == []


def test_unknown_classifications_need_an_admin(people, slide):
    from webapp.annotations.models import Label

    Label.objects.create(department=people.department, name="Stroma")
    document = collection(feature(square(0, 0, 10), "Stroma"), feature(square(0, 0, 10), "Tumor"))
    refused = import_geojson(people.owner.client, slide.pk, document)
    assert refused.status_code == 400
    assert refused.json()["feature"] == 1
    assert "'Tumor'" in refused.json()["error"] and "Stroma" in refused.json()["error"]
    assert all_annotations(people.owner.client, slide.pk) == []
    assert not Label.objects.filter(name="Tumor").exists()

    accepted = import_geojson(people.admin.client, slide.pk, document)
    assert accepted.status_code == 201
    assert accepted.json()["labels_created"] == ["Tumor"]
    created = Label.objects.get(name="Tumor")
    assert (created.department_id, created.color) == (people.department.pk, "#c80000")
    # Now the label exists, pathologists import it too.
    assert import_geojson(people.owner.client, slide.pk, document).status_code == 201


def test_detections_and_cells_keep_their_type_and_nucleus(people, slide):
    cell = feature(square(100, 100, 20), objectType="cell", measurements={"Nucleus: Area": 42.5})
    cell["nucleusGeometry"] = square(105, 105, 8)
    document = collection(cell, feature(square(300, 300, 10), objectType="detection"),
                          feature({"type": "Point", "coordinates": [5, 6]}), feature(
                              {"type": "LineString", "coordinates": [[1, 1], [9, 9]]}))
    assert import_geojson(people.owner.client, slide.pk, document).status_code == 201
    listed = all_annotations(people.owner.client, slide.pk)
    assert [a["object_type"] for a in listed] == ["cell", "detection", "annotation", "annotation"]
    assert listed[0]["nucleus_geometry"]["type"] == "Polygon"
    exported = people.owner.client.get(f"/api/slides/{slide.pk}/annotations.geojson").json()["features"]
    assert exported[0]["nucleusGeometry"]["coordinates"][0][0] == [105, 105]
    assert exported[0]["properties"]["measurements"] == {"Nucleus: Area": 42.5}
    assert [f["properties"]["objectType"] for f in exported] == ["cell", "detection", "annotation", "annotation"]


def _huge_polygon(count: int) -> dict:
    ring = [[i % 1000, i // 1000] for i in range(count - 1)]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


MALFORMED = [
    ("invalid JSON", b'{"type": "FeatureCollection", "features": [', "invalid JSON", None),
    ("NaN", b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
            b'"geometry": {"type": "Point", "coordinates": [NaN, 1]}}]}', "NaN", None),
    ("a string", b'"annotations"', "expected a GeoJSON FeatureCollection", None),
    ("a bare geometry", json.dumps(square(0, 0, 5)).encode(), "expected a GeoJSON FeatureCollection", None),
    ("features not an array", b'{"type": "FeatureCollection", "features": {}}', "'features' array", None),
    ("a GeometryCollection", [{"type": "GeometryCollection", "geometries": []}], "not supported", 1),
    ("an open ring", [{"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 9]]]}], "not closed", 1),
    ("out of bounds", [square(11_990, 10, 20)], "outside the slide", 1),
    ("a negative coordinate", [{"type": "Point", "coordinates": [5, -0.5]}], "outside the slide", 1),
    ("a string coordinate", [{"type": "Point", "coordinates": [5, "6"]}], "must be numbers", 1),
    ("3-D positions", [{"type": "Point", "coordinates": [5, 6, 7]}], "must be [x, y]", 1),
    ("a collapsed polygon", [{"type": "Polygon", "coordinates": [[[0, 0], [5, 5], [9, 9], [0, 0]]]}],
     "cannot be repaired", 1),
    ("too many positions", [_huge_polygon(100_001)], "more than 100000 positions", 1),
    ("no geometry", [None], "no geometry", 1),
]


@pytest.mark.parametrize(("body", "reason", "index"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_refused_whole(people, slide, body, reason, index):
    if isinstance(body, list):
        bad = feature(body[0]) if body[0] is not None else {"type": "Feature", "properties": {}, "geometry": None}
        body = collection(feature(square(0, 0, 10)), bad, feature(square(20, 20, 10)))
    response = import_geojson(people.owner.client, slide.pk, body)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    if index is not None:
        assert response.json()["feature"] == index
        assert response.json()["error"].startswith(f"feature {index}:")
    assert all_annotations(people.owner.client, slide.pk) == []


def test_other_object_types_and_properties_are_checked(people, slide):
    document = collection(feature(square(0, 0, 10)), feature(square(0, 0, 10), objectType="tma_core"))
    response = import_geojson(people.owner.client, slide.pk, document)
    assert response.status_code == 400
    assert response.json()["feature"] == 1 and "objectType" in response.json()["error"]
    not_cell = feature(square(0, 0, 10))
    not_cell["nucleusGeometry"] = square(1, 1, 2)
    response = import_geojson(people.owner.client, slide.pk, collection(not_cell))
    assert response.status_code == 400 and "only cells" in response.json()["error"]


def test_self_intersections_are_repaired_and_reported(people, slide):
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    response = import_geojson(people.owner.client, slide.pk, collection(feature(square(50, 50, 5)), feature(bowtie)))
    assert response.status_code == 201, response.text
    assert response.json()["repaired"] == [{"feature": 1, "reason": "repaired: Self-intersection[5 5]"}]
    repaired = all_annotations(people.owner.client, slide.pk)[1]["geometry"]
    assert repaired["type"] == "MultiPolygon" and len(repaired["coordinates"]) == 2
