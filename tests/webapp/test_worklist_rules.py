"""Assignment, status transitions, priority changes, sign-out read-only and addenda: the rules by role."""

from __future__ import annotations

import pytest

from tests.conftest import create_case
from tests.webapp.worklist_fixtures import make_case, team_fixture  # noqa: F401 (the `team` fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def _assign(person, case_id: int, assignee):
    return person.client.post(f"/api/cases/{case_id}/assign/", json={"assignee": assignee})


def _status(person, case_id: int, status: str):
    return person.client.post(f"/api/cases/{case_id}/status/", json={"status": status})


def test_a_pathologist_takes_an_unassigned_case_and_releases_it(team):
    owner = team.people.owner
    case = create_case(owner.client, "A-1")
    taken = _assign(owner, case["id"], "me")
    assert taken.status_code == 200, taken.text
    assert taken.json()["assignee"] == owner.user.id
    assert taken.json()["assignee_name"] == "owner"
    assert _assign(owner, case["id"], owner.user.id).status_code == 200  # idempotent
    released = _assign(owner, case["id"], None)
    assert released.status_code == 200
    assert released.json()["assignee"] is None


def test_a_pathologist_cannot_take_over_or_hand_out_cases(team):
    owner, other = team.people.owner, team.pathologist2
    case = create_case(owner.client, "A-2")
    assert _assign(owner, case["id"], "me").status_code == 200
    taken = _assign(other, case["id"], "me")
    assert taken.status_code == 409
    assert "admin" in taken.json()["error"]
    assert _assign(other, case["id"], None).status_code == 403
    fresh = create_case(owner.client, "A-3")
    assert _assign(owner, fresh["id"], other.user.id).status_code == 403


def test_an_admin_assigns_and_reassigns_to_pathologists_of_the_department(team):
    admin, owner, other = team.people.admin, team.people.owner, team.pathologist2
    case = create_case(owner.client, "A-4")
    assert _assign(admin, case["id"], owner.user.id).json()["assignee"] == owner.user.id
    assert _assign(admin, case["id"], other.user.id).json()["assignee"] == other.user.id
    assert _assign(admin, case["id"], "me").json()["assignee"] == admin.user.id
    # Only someone who could sign out may hold a case; and only within the department.
    for unfit in [team.resident.user.id, team.people.colleague.user.id, team.people.outsider.user.id, 987654]:
        refused = _assign(admin, case["id"], unfit)
        assert refused.status_code == 400, unfit
    assert _assign(admin, case["id"], "someone").status_code == 400


def test_technicians_and_residents_cannot_assign(team):
    case = create_case(team.people.owner.client, "A-5")
    for person in [team.people.colleague, team.resident]:
        assert _assign(person, case["id"], "me").status_code == 403
        assert _assign(person, case["id"], team.people.owner.user.id).status_code == 403


def test_status_moves_received_to_review_to_signed_out_only(team):
    owner = team.people.owner
    case = create_case(owner.client, "T-1")
    _assign(owner, case["id"], "me")
    skipped = _status(owner, case["id"], "signed_out")
    assert skipped.status_code == 409
    assert "received to signed_out" in skipped.json()["error"]
    assert _status(team.resident, case["id"], "in_review").json()["status"] == "in_review"
    assert _status(owner, case["id"], "received").json()["status"] == "received"
    assert _status(owner, case["id"], "in_review").status_code == 200
    signed = _status(owner, case["id"], "signed_out")
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["status"] == "signed_out"
    assert body["signed_out_by"] == owner.user.id and body["signed_out_at"]
    assert _status(owner, case["id"], "whenever").status_code == 400


def test_only_the_assignee_or_an_admin_signs_out(team):
    owner = team.people.owner
    case = create_case(owner.client, "T-2")
    _assign(owner, case["id"], "me")
    _status(owner, case["id"], "in_review")
    for person in [team.people.colleague, team.resident, team.pathologist2]:
        refused = _status(person, case["id"], "signed_out")
        assert refused.status_code == 403, person.user.username
        assert "assigned pathologist" in refused.json()["error"]
    assert _status(team.people.colleague, case["id"], "received").status_code == 403
    assert _status(team.people.admin, case["id"], "signed_out").status_code == 200


def test_an_unassigned_case_is_signed_out_by_an_admin_only(team):
    case = create_case(team.people.owner.client, "T-3")
    _status(team.people.owner, case["id"], "in_review")
    assert _status(team.people.owner, case["id"], "signed_out").status_code == 403
    assert _status(team.people.admin, case["id"], "signed_out").status_code == 200


def test_a_signed_out_case_is_read_only_except_for_addenda(team):
    from webapp.cases.models import CaseStatus

    owner, admin = team.people.owner, team.people.admin
    case = make_case(team.department, "RO-1", status=CaseStatus.SIGNED_OUT, assignee=owner.user)
    url = f"/api/cases/{case.id}/"
    for person in [owner, admin]:
        edit = person.client.patch(url, json={"organ": "lung"})
        assert edit.status_code == 409
        assert "addendum" in edit.json()["error"]
        assert person.client.patch(url, json={"priority": "stat"}).status_code == 409
        assert _assign(person, case.id, None).status_code == 409
        assert _status(person, case.id, "in_review").status_code == 409
    upload = owner.client.post("/api/slides/", data={"case": str(case.id)}, files={"file": ("a.svs", b"not a slide")})
    assert upload.status_code == 409
    assert owner.client.get(url).json()["organ"] == ""

    added = owner.client.post(f"{url}addenda/", json={"text": "  Immunostains: CK7+, CK20-.  "})
    assert added.status_code == 201, added.text
    assert added.json()["text"] == "Immunostains: CK7+, CK20-."
    assert added.json()["author"] == owner.user.id
    assert admin.client.post(f"{url}addenda/", json={"text": "Corrected laterality: left."}).status_code == 201
    listed = team.people.colleague.client.get(f"{url}addenda/").json()
    assert [a["text"] for a in listed] == ["Immunostains: CK7+, CK20-.", "Corrected laterality: left."]
    assert owner.client.post(f"{url}addenda/", json={"text": "   "}).status_code == 400


def test_addenda_are_only_for_signed_out_cases(team):
    case = create_case(team.people.owner.client, "AD-1")
    refused = team.people.owner.client.post(f"/api/cases/{case['id']}/addenda/", json={"text": "early"})
    assert refused.status_code == 409


def test_status_and_assignee_are_not_patched_directly(team):
    case = create_case(team.people.owner.client, "P-1")
    url = f"/api/cases/{case['id']}/"
    via_patch = team.people.owner.client.patch(url, json={"status": "signed_out"})
    assert via_patch.status_code == 400
    assert "/status/" in via_patch.json()["error"]
    # Sending the current values back (a full PUT-style body) is fine.
    same = team.people.owner.client.patch(url, json={"status": "received", "assignee": None, "organ": "colon"})
    assert same.status_code == 200, same.text
    created = team.people.owner.client.post("/api/cases/", json={"accession_number": "P-2", "status": "signed_out"})
    assert created.status_code == 400


def test_any_member_changes_priority(team):
    case = create_case(team.people.owner.client, "PR-1")
    for person, priority in [(team.people.colleague, "urgent"), (team.resident, "stat"), (team.people.owner, "routine")]:
        changed = person.client.patch(f"/api/cases/{case['id']}/", json={"priority": priority})
        assert changed.status_code == 200
        assert changed.json()["priority"] == priority
