"""Roles × endpoints for cases, slides, the worklist and the audit trail (REST and websocket).

Each row calls one endpoint as every role and compares all outcomes with the expected row at once, so a
failure shows the whole row. Outcomes: an HTTP status; for lists and figures "listed" (the department's
object is there) or "hidden" (the call succeeds but the other department's data is absent); for the
websocket "open" or the close code. Another department's object named in the URL is a 404 (close 4404),
exactly as for one that does not exist; named in a request body (create in that department, upload
into its case) it is the 400 that a non-existent one gets.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.webapp.worklist_fixtures import close_code, make_case, make_slide, team_fixture  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ["technician", "resident", "pathologist", "admin", "outsider", "anonymous"]
EXPECTED: dict[str, list] = {
    #                  technician resident  pathologist admin     outsider  anonymous
    "cases.list":      ["listed", "listed", "listed",  "listed", "hidden", 401],
    "cases.counts":    ["listed", "listed", "listed",  "listed", "hidden", 401],
    "cases.detail":    [200,      200,      200,       200,      404,      401],
    "cases.create":    [201,      201,      201,       201,      400,      401],
    "cases.patch":     [200,      200,      200,       200,      404,      401],
    "cases.assign":    [403,      403,      200,       200,      404,      401],
    "cases.sign_out":  [403,      403,      200,       200,      404,      401],
    "cases.addenda":   [403,      403,      201,       201,      404,      401],
    "audit.list":      [403,      403,      403,       200,      403,      401],
    "stats.turnaround": ["listed", "listed", "listed", "listed", "hidden", 401],
    "slides.list":     ["listed", "listed", "listed",  "listed", "hidden", 401],
    "slides.detail":   [200,      200,      200,       200,      404,      401],
    "slides.upload":   [201,      201,      201,       201,      400,      401],
    "ws.worklist":     ["open",   "open",   "open",    "open",   "open",   4401],
    "ws.worklist.department": ["open", "open", "open", "open",   4404,     4401],
}


def _person(team, role: str):
    return None if role == "anonymous" else team.by_role()[role]


def _client(team, role: str):
    person = _person(team, role)
    return team.people.anonymous if person is None else person.client


def _listed(response, found: Callable[[dict], bool]):
    return ("listed" if found(response.json()) else "hidden") if response.status_code == 200 else response.status_code


def _case(team, accession: str, **fields):
    return make_case(team.department, accession, **fields)


def cases_list(team, role):
    case = _case(team, f"L-{role}")
    response = _client(team, role).get("/api/cases/")
    return _listed(response, lambda page: case.id in [c["id"] for c in page["results"]])


def cases_counts(team, role):
    _case(team, f"C-{role}")
    return _listed(_client(team, role).get("/api/cases/counts/"), lambda counts: counts["total"] > 0)


def cases_detail(team, role):
    return _client(team, role).get(f"/api/cases/{_case(team, f'D-{role}').id}/").status_code


def cases_create(team, role):
    body = {"accession_number": f"N-{role}", "department": team.department.id}
    return _client(team, role).post("/api/cases/", json=body).status_code


def cases_patch(team, role):
    case = _case(team, f"P-{role}")
    return _client(team, role).patch(f"/api/cases/{case.id}/", json={"organ": "breast"}).status_code


def cases_assign(team, role):
    case = _case(team, f"A-{role}")
    return _client(team, role).post(f"/api/cases/{case.id}/assign/", json={"assignee": "me"}).status_code


def cases_sign_out(team, role):
    # In review and assigned to the pathologist: what a sign-out needs.
    case = _case(team, f"S-{role}", status="in_review", assignee=team.people.owner.user)
    return _client(team, role).post(f"/api/cases/{case.id}/status/", json={"status": "signed_out"}).status_code


def cases_addenda(team, role):
    case = _case(team, f"AD-{role}", status="signed_out", assignee=team.people.owner.user)
    return _client(team, role).post(f"/api/cases/{case.id}/addenda/", json={"text": "addendum"}).status_code


def audit_list(team, role):
    case = _case(team, f"AU-{role}")
    return _client(team, role).get(f"/api/audit/?case={case.id}").status_code


def stats_turnaround(team, role):
    from datetime import timedelta

    from tests.webapp.worklist_fixtures import T0

    _case(team, f"T-{role}", status="signed_out", signed_out_at=T0 + timedelta(hours=3))
    response = _client(team, role).get("/api/stats/turnaround/")
    return _listed(response, lambda figures: sum(row["count"] for row in figures["by_priority"]) > 0)


def slides_list(team, role):
    slide = make_slide(_case(team, f"SL-{role}"))
    response = _client(team, role).get("/api/slides/")
    return _listed(response, lambda page: slide.id in [s["id"] for s in page["results"]])


def slides_detail(team, role):
    slide = make_slide(_case(team, f"SD-{role}"))
    return _client(team, role).get(f"/api/slides/{slide.id}/").status_code


def slides_upload(team, role):
    case = _case(team, f"SU-{role}")
    files = {"file": (f"{role}.svs", b"slide bytes of " + role.encode())}
    return _client(team, role).post("/api/slides/", data={"case": str(case.id)}, files=files).status_code


def _ws(query: str):
    def call(team, role):
        code = close_code(team.url, _person(team, role), query.format(department=team.department.id))
        return "open" if code is None else code

    return call


CALLS = {
    "cases.list": cases_list,
    "cases.counts": cases_counts,
    "cases.detail": cases_detail,
    "cases.create": cases_create,
    "cases.patch": cases_patch,
    "cases.assign": cases_assign,
    "cases.sign_out": cases_sign_out,
    "cases.addenda": cases_addenda,
    "audit.list": audit_list,
    "stats.turnaround": stats_turnaround,
    "slides.list": slides_list,
    "slides.detail": slides_detail,
    "slides.upload": slides_upload,
    "ws.worklist": _ws(""),
    "ws.worklist.department": _ws("?department={department}"),
}


@pytest.mark.parametrize("endpoint", list(EXPECTED))
def test_roles_matrix(team, endpoint):
    outcomes = {role: CALLS[endpoint](team, role) for role in ROLES}
    assert outcomes == dict(zip(ROLES, EXPECTED[endpoint], strict=True))
