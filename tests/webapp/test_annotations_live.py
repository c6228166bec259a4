"""`/ws/slides/<id>/` on the real ASGI server: events after commit only, presence, the same access rules as REST."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import make_person
from tests.webapp.annotations_support import (
    close_code,
    collection,
    create,
    feature,
    import_geojson,
    make_slide,
    next_message,
    no_message,
    slide_socket,
    square,
    token_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slide(people):
    return make_slide(people.department)


def test_changes_reach_a_second_viewer_after_commit(people, slide, asgi_server):
    owner, viewer = people.owner.client, people.colleague.client
    with slide_socket(asgi_server.url, slide.pk, token_of(viewer)) as ws:
        made = create(owner, slide.pk, square(10, 10, 20), note="look here")
        created = next_message(ws, "annotation.")
        assert created["type"] == "annotation.created"
        assert created["annotation"]["id"] == made["id"]
        assert created["annotation"]["note"] == "look here"

        owner.patch(f"/api/annotations/{made['id']}/", json={"note": "moved", "version": 1})
        updated = next_message(ws, "annotation.")
        assert (updated["type"], updated["annotation"]["version"]) == ("annotation.updated", 2)
        assert updated["annotation"]["note"] == "moved"

        owner.delete(f"/api/annotations/{made['id']}/")
        deleted = next_message(ws, "annotation.")
        assert (deleted["type"], deleted["annotation"]["id"]) == ("annotation.deleted", made["id"])

        assert import_geojson(owner, slide.pk, collection(feature(square(0, 0, 5)))).status_code == 201
        imported = next_message(ws, "annotation.")
        assert imported == {"type": "annotation.imported", "slide": slide.pk, "count": 1}


def test_no_event_for_a_rolled_back_or_refused_write(people, slide, asgi_server):
    from django.db import transaction

    from webapp.annotations import services
    from webapp.annotations.geometry import clean_geometry

    with slide_socket(asgi_server.url, slide.pk, token_of(people.colleague.client)) as ws:
        clean = clean_geometry(square(1, 1, 5))

        class Abort(Exception):
            pass

        with pytest.raises(Abort), transaction.atomic():
            rolled_back = services.create_annotation(slide, people.owner.user, geometry=clean.geometry,
                                                     bbox=clean.bbox, note="never committed")
            raise Abort()
        refused = import_geojson(people.owner.client, slide.pk,
                                 collection(feature(square(0, 0, 5)), feature(square(0, 0, 50_000))))
        assert refused.status_code == 400
        no_message(ws, "annotation.")

        committed = create(people.owner.client, slide.pk, square(2, 2, 5), note="committed")
        event = next_message(ws, "annotation.")
        assert event["annotation"]["id"] == committed["id"] != rolled_back.pk
        assert event["annotation"]["note"] == "committed"


def test_viewers_see_who_else_is_there_and_where(people, slide, asgi_server):
    resident = make_person(asgi_server.url, "resident", "resident", [people.department])
    with slide_socket(asgi_server.url, slide.pk, token_of(people.owner.client)) as first:
        with slide_socket(asgi_server.url, slide.pk, token_of(resident.client)) as second:
            joined = next_message(first, "viewer.joined")
            assert joined["viewer"]["username"] == "resident"
            already_there = next_message(second, "viewer.joined")
            assert already_there["viewer"]["username"] == "owner"

            second.send('{"type": "viewport", "bbox": [0, 0, 1920, 1080]}')
            viewport = next_message(first, "viewer.viewport")
            assert viewport["bbox"] == [0, 0, 1920, 1080]
            assert viewport["viewer"]["id"] == joined["viewer"]["id"]
            second.send('{"type": "viewport", "bbox": [0, "x"]}')
            assert next_message(second, "error")["error"].startswith("bbox")
        left = next_message(first, "viewer.left")
        assert left["viewer"]["id"] == joined["viewer"]["id"]
    resident.client.close()


def test_another_departments_slide_closes_with_4404(people, slide, asgi_server):
    with slide_socket(asgi_server.url, slide.pk, token_of(people.outsider.client)) as ws:
        assert close_code(ws) == 4404
    with slide_socket(asgi_server.url, 999_999, token_of(people.owner.client)) as ws:
        assert close_code(ws) == 4404
    with slide_socket(asgi_server.url, slide.pk, token_of(people.admin.client)) as ws:
        no_message(ws, "", wait=0.3)  # admins see every department: the socket stays open


def test_unauthenticated_and_foreign_origin_are_refused(people, slide, asgi_server):
    with slide_socket(asgi_server.url, slide.pk, None) as ws:
        assert close_code(ws) == 4401
    with slide_socket(asgi_server.url, slide.pk, "not-a-token") as ws:
        assert close_code(ws) == 4401
    with pytest.raises(InvalidStatus) as refused:
        with slide_socket(asgi_server.url, slide.pk, token_of(people.owner.client), origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
