"""Annotations over REST: create, read, edit with versions, soft delete and restore, history, labels, viewports."""

from __future__ import annotations

import random

import pytest

from tests.webapp.annotations_support import (
    all_annotations,
    collection,
    create,
    feature,
    import_geojson,
    make_slide,
    square,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slide(people):
    return make_slide(people.department)


@pytest.fixture
def tumour(people):
    from webapp.annotations.models import Label

    return Label.objects.create(department=people.department, name="Tumour", color="#c00000")


def test_it_creates_and_reads_an_annotation(people, slide, tumour):
    client = people.owner.client
    made = create(client, slide.pk, square(100, 200, 50), label=tumour.pk, note="invasive front", shape="rectangle")
    assert made["slide"] == slide.pk
    assert made["version"] == 1
    assert made["author"] == people.owner.user.pk
    assert made["provenance"] == {"kind": "person", "user": people.owner.user.pk}
    assert made["label"] == tumour.pk
    assert made["shape"] == "rectangle"
    assert made["object_type"] == "annotation"
    for field in ["id", "geometry", "note", "created_at", "updated_at"]:
        assert field in made
    read = client.get(f"/api/annotations/{made['id']}/")
    assert read.status_code == 200
    assert read.headers["ETag"] == '"1"'
    assert read.json()["geometry"] == made["geometry"]
    # Ring direction is normalised (positive shoelace area), the first position kept.
    assert made["geometry"]["coordinates"][0][0] == [100, 200]
    # Listings (assembled as text) give exactly the detail representation.
    assert all_annotations(client, slide.pk) == [read.json()]
    assert all_annotations(client, slide.pk, bbox="0,0,120,220") == [read.json()]


def test_it_accepts_every_geometry_type_and_keeps_holes(people, slide):
    client = people.owner.client
    holed = {"type": "Polygon", "coordinates": [
        [[0, 0], [0, 100], [100, 100], [100, 0], [0, 0]],
        [[10, 10], [20, 10], [20, 20], [10, 20], [10, 10]],
    ]}
    geometries = [
        {"type": "Point", "coordinates": [5, 5]},
        {"type": "MultiPoint", "coordinates": [[5, 5], [6.5, 7.25]]},
        {"type": "LineString", "coordinates": [[0, 0], [30, 40]]},
        holed,
        {"type": "MultiPolygon", "coordinates": [holed["coordinates"], square(200, 200, 10)["coordinates"]]},
    ]
    for geometry in geometries:
        made = create(client, slide.pk, geometry)
        assert made["geometry"]["type"] == geometry["type"]
    polygon = all_annotations(client, slide.pk)[3]["geometry"]
    assert len(polygon["coordinates"]) == 2  # the hole is kept
    multi = all_annotations(client, slide.pk)[4]["geometry"]
    assert len(multi["coordinates"]) == 2 and len(multi["coordinates"][0]) == 2


@pytest.mark.parametrize(("geometry", "reason"), [
    ({"type": "GeometryCollection", "geometries": []}, "not supported"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10]]]}, "not closed"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 0]]]}, "at least 4 positions"),
    ({"type": "Point", "coordinates": [30_000, 5]}, "outside the slide"),
    ({"type": "Point", "coordinates": [-1, 5]}, "outside the slide"),
    ({"type": "Point", "coordinates": ["1", 5]}, "must be numbers"),
    ({"type": "LineString", "coordinates": [[1, 1]]}, "at least 2 positions"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [5, 5], [10, 10], [0, 0]]]}, "cannot be repaired"),
])
def test_it_refuses_bad_geometry_with_a_reason(people, slide, geometry, reason):
    response = people.owner.client.post(f"/api/slides/{slide.pk}/annotations/", json={"geometry": geometry})
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_it_repairs_a_self_intersecting_polygon_and_says_so(people, slide):
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    made = create(people.owner.client, slide.pk, bowtie)
    assert made["geometry"]["type"] == "MultiPolygon"
    assert "Self-intersection" in made["repaired"]


def test_it_refuses_another_departments_label(people, slide):
    from webapp.annotations.models import Label

    foreign = Label.objects.create(department=people.other_department, name="Tumour")
    response = people.owner.client.post(
        f"/api/slides/{slide.pk}/annotations/", json={"geometry": square(0, 0, 5), "label": foreign.pk}
    )
    assert response.status_code == 400
    assert "another department" in response.json()["error"]


def test_patch_needs_the_version_and_bumps_it(people, slide):
    client = people.owner.client
    made = create(client, slide.pk, square(0, 0, 10))
    url = f"/api/annotations/{made['id']}/"
    assert client.patch(url, json={"note": "x"}).status_code == 428
    edited = client.patch(url, json={"note": "first", "version": 1})
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2
    by_header = client.patch(url, json={"geometry": square(500, 500, 20)}, headers={"If-Match": '"2"'})
    assert by_header.status_code == 200, by_header.text
    assert by_header.json()["version"] == 3
    assert by_header.headers["ETag"] == '"3"'
    stale = client.patch(url, json={"note": "late"}, headers={"If-Match": '"2"'})
    assert stale.status_code == 409
    assert stale.json()["current"]["version"] == 3
    assert stale.json()["current"]["note"] == "first"
    # The moved geometry moved its bounding box too.
    assert [a["id"] for a in all_annotations(client, slide.pk, bbox="505,505,506,506")] == [made["id"]]
    assert all_annotations(client, slide.pk, bbox="0,0,10,10") == []


def test_soft_delete_hides_and_admins_restore(people, slide):
    client = people.owner.client
    made = create(client, slide.pk, square(0, 0, 10))
    url = f"/api/annotations/{made['id']}/"
    assert client.delete(url, headers={"If-Match": '"7"'}).status_code == 409
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert all_annotations(client, slide.pk) == []
    assert client.get(f"/api/slides/{slide.pk}/annotations/", params={"deleted": "1"}).status_code == 403
    assert client.post(f"{url}restore/").status_code == 404

    admin = people.admin.client
    deleted = all_annotations(admin, slide.pk, deleted="1")
    assert [a["id"] for a in deleted] == [made["id"]]
    assert deleted[0]["deleted_at"] is not None
    restored = admin.post(f"{url}restore/")
    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 3
    assert [a["id"] for a in all_annotations(client, slide.pk)] == [made["id"]]

    history = client.get(f"{url}history/").json()["results"]
    assert [(h["action"], h["version"], h["actor"]) for h in history] == [
        ("created", 1, people.owner.user.pk),
        ("deleted", 2, people.owner.user.pk),
        ("restored", 3, people.admin.user.pk),
    ]
    assert history[1]["before"]["deleted"] is False and history[1]["after"]["deleted"] is True


def test_history_keeps_before_and_after(people, slide):
    client = people.owner.client
    made = create(client, slide.pk, square(0, 0, 10), note="a")
    client.patch(f"/api/annotations/{made['id']}/", json={"note": "b", "version": 1})
    history = client.get(f"/api/annotations/{made['id']}/history/").json()["results"]
    assert history[0]["before"] is None and history[0]["after"]["note"] == "a"
    assert history[1]["before"]["note"] == "a" and history[1]["after"]["note"] == "b"
    assert history[1]["actor_name"] == "owner"


def test_admins_edit_label_sets_and_others_read_them(people):
    admin = people.admin.client
    made = admin.post("/api/labels/", json={"department": people.department.pk, "name": "Necrosis",
                                            "color": "#AA00ff"})
    assert made.status_code == 201, made.text
    assert made.json()["color"] == "#aa00ff"
    duplicate = admin.post("/api/labels/", json={"department": people.department.pk, "name": "Necrosis"})
    assert duplicate.status_code == 400
    bad = admin.post("/api/labels/", json={"department": people.department.pk, "name": "X", "color": "red"})
    assert bad.status_code == 400 and "#rrggbb" in bad.json()["error"]
    label_url = f"/api/labels/{made.json()['id']}/"
    assert admin.patch(label_url, json={"color": "#000000"}).json()["color"] == "#000000"

    assert [lb["name"] for lb in people.colleague.client.get("/api/labels/").json()["results"]] == ["Necrosis"]
    assert people.outsider.client.get("/api/labels/").json()["results"] == []
    assert people.outsider.client.get(label_url).status_code == 404
    assert people.owner.client.patch(label_url, json={"color": "#111111"}).status_code == 403
    assert people.owner.client.post(
        "/api/labels/", json={"department": people.department.pk, "name": "Mine"}).status_code == 403


def test_the_label_filter(people, slide, tumour):
    client = people.owner.client
    a = create(client, slide.pk, square(0, 0, 10), label=tumour.pk)
    create(client, slide.pk, square(0, 0, 10))
    assert [x["id"] for x in all_annotations(client, slide.pk, label=str(tumour.pk))] == [a["id"]]
    assert [x["id"] for x in all_annotations(client, slide.pk, label="Tumour")] == [a["id"]]


def _meets(box, view) -> bool:
    return box[0] <= view[2] and box[2] >= view[0] and box[1] <= view[3] and box[3] >= view[1]


def test_viewport_queries_return_exactly_what_meets_the_viewport(people):
    """Random shapes of every extent class (4 px to 1.2 M px) against random viewports, vs brute force."""
    side = 1_500_000
    slide = make_slide(people.department, width=side, height=side)
    rng = random.Random(5)
    boxes, features = [], []
    for _ in range(600):
        size = rng.choice([0, 3, 40, 300, 5_000, 70_000, 600_000, 1_200_000])
        x, y = rng.uniform(0, side - size), rng.uniform(0, side - size)
        if size == 0:
            geometry = {"type": "Point", "coordinates": [x, y]}
        elif rng.random() < 0.2:
            geometry = {"type": "LineString", "coordinates": [[x, y + size], [x + size, y]]}
        else:
            geometry = square(x, y, size)
        boxes.append((x, y, x + size, y + size))
        features.append(feature(geometry))
    client = people.owner.client
    assert import_geojson(client, slide.pk, collection(*features)).status_code == 201
    ids = [a["id"] for a in all_annotations(client, slide.pk, page_size=5000)]
    by_id = dict(zip(ids, boxes, strict=True))
    views = [(0, 0, side, side), (10, 10, 10, 10)]
    for _ in range(40):
        w, h = rng.choice([(1920, 1080), (20_000, 12_000), (300_000, 200_000)])
        x, y = rng.uniform(0, side - w), rng.uniform(0, side - h)
        views.append((x, y, x + w, y + h))
    for view in views:
        expected = sorted(i for i, box in by_id.items() if _meets(box, view))
        got = [a["id"] for a in all_annotations(client, slide.pk, bbox=",".join(map(str, view)), page_size=97)]
        assert got == expected, view


def test_it_refuses_a_malformed_bbox(people, slide):
    for bbox in ["1,2,3", "a,b,c,d", "10,10,0,0", "nan,0,1,1"]:
        response = people.owner.client.get(f"/api/slides/{slide.pk}/annotations/", params={"bbox": bbox})
        assert response.status_code == 400, bbox
        assert response.json()["error"].startswith("bbox")


def test_a_signed_out_cases_annotations_are_read_only(people, slide):
    from webapp.cases.models import CaseStatus

    client = people.owner.client
    kept = create(client, slide.pk, square(100, 100, 50))
    slide.case.status = CaseStatus.SIGNED_OUT
    slide.case.save()
    refused = [
        client.post(f"/api/slides/{slide.pk}/annotations/", json={"geometry": square(300, 300, 50)}),
        client.patch(f"/api/annotations/{kept['id']}/", json={"note": "late", "version": kept["version"]}),
        client.delete(f"/api/annotations/{kept['id']}/"),
        import_geojson(client, slide.pk, collection(feature(square(500, 500, 50)))),
    ]
    for response in refused:
        assert response.status_code == 409, response.text
        assert "signed out" in response.json()["error"]
    assert [a["id"] for a in all_annotations(client, slide.pk)] == [kept["id"]]
    assert client.get(f"/api/annotations/{kept['id']}/").json()["note"] == kept["note"]
