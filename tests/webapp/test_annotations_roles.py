"""The annotation rows of the roles matrix: every role × endpoint (REST and websocket), one expected outcome each.

technician: sees annotations, cannot write them; resident, pathologist, admin: annotate; only admins
edit label sets and see or restore deleted annotations; another department: 404 / close 4404.
"""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import make_person
from tests.webapp.annotations_support import (
    close_code,
    collection,
    create,
    feature,
    import_geojson,
    make_slide,
    no_message,
    slide_socket,
    square,
    token_of,
)

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ["technician", "resident", "pathologist", "admin", "outsider", "anonymous"]

# endpoint → expected status per role, in ROLES order.
EXPECTED = {
    "list": [200, 200, 200, 200, 404, 401],
    "create": [403, 201, 201, 201, 404, 401],
    "read": [200, 200, 200, 200, 404, 401],
    "patch": [403, 200, 200, 200, 404, 401],
    "history": [200, 200, 200, 200, 404, 401],
    "delete": [403, 204, 204, 204, 404, 401],
    "list deleted": [403, 403, 403, 200, 404, 401],
    "restore": [404, 404, 404, 200, 404, 401],
    "import": [403, 201, 201, 201, 404, 401],
    "export": [200, 200, 200, 200, 404, 401],
    "labels read": [200, 200, 200, 200, 404, 401],
    "labels create": [403, 403, 403, 201, 403, 401],
    "labels edit": [403, 403, 403, 200, 404, 401],
    "websocket": ["open", "open", "open", "open", 4404, 4401],
}


def test_the_annotation_roles_matrix(people, asgi_server):
    from webapp.annotations.models import Label

    slide = make_slide(people.department)
    label = Label.objects.create(department=people.department, name="Tumour")
    resident = make_person(asgi_server.url, "resident", "resident", [people.department])
    clients = {
        "technician": people.colleague.client,
        "resident": resident.client,
        "pathologist": people.owner.client,
        "admin": people.admin.client,
        "outsider": people.outsider.client,
        "anonymous": people.anonymous,
    }
    base = f"/api/slides/{slide.pk}/annotations/"
    outcomes: dict[str, list] = {endpoint: [] for endpoint in EXPECTED}
    for role, client in clients.items():
        # Each role works on annotations of its own, so one role's delete does not change the next one's outcome.
        mine = create(people.owner.client, slide.pk, square(0, 0, 10))
        gone = create(people.owner.client, slide.pk, square(0, 0, 10))
        people.owner.client.delete(f"/api/annotations/{gone['id']}/")
        one = f"/api/annotations/{mine['id']}/"
        calls = {
            "list": lambda c=client: c.get(base),
            "create": lambda c=client: c.post(base, json={"geometry": square(5, 5, 5)}),
            "read": lambda c=client, u=one: c.get(u),
            "patch": lambda c=client, u=one: c.patch(u, json={"note": "x", "version": 1}),
            "history": lambda c=client, u=one: c.get(f"{u}history/"),
            "delete": lambda c=client, u=one: c.delete(u),
            "list deleted": lambda c=client: c.get(base, params={"deleted": "1"}),
            "restore": lambda c=client, g=gone: c.post(f"/api/annotations/{g['id']}/restore/"),
            "import": lambda c=client: import_geojson(c, slide.pk, collection(feature(square(1, 1, 5)))),
            "export": lambda c=client: c.get(f"/api/slides/{slide.pk}/annotations.geojson"),
            "labels read": lambda c=client: c.get(f"/api/labels/{label.pk}/"),
            "labels create": lambda c=client, r=role: c.post(
                "/api/labels/", json={"department": people.department.pk, "name": f"new-{r}"}),
            "labels edit": lambda c=client: c.patch(f"/api/labels/{label.pk}/", json={"color": "#123456"}),
        }
        for endpoint, call in calls.items():
            outcomes[endpoint].append(call().status_code)
        token = token_of(client) if "Authorization" in client.headers else None
        with slide_socket(asgi_server.url, slide.pk, token) as ws:
            try:
                no_message(ws, "annotation.", wait=0.3)
                outcomes["websocket"].append("open")
            except ConnectionClosed:
                outcomes["websocket"].append(close_code(ws))
    mismatches = {e: dict(zip(ROLES, outcomes[e], strict=True)) for e in EXPECTED if outcomes[e] != EXPECTED[e]}
    assert not mismatches, json.dumps(mismatches, indent=1)
    resident.client.close()
