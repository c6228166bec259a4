"""Cases: creation rules, department isolation, editing."""

from __future__ import annotations

import pytest

from tests.conftest import create_case, make_person

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_creates_a_case_in_the_users_only_department(people):
    case = create_case(
        people.owner.client,
        "S26-100",
        patient_pseudonym="PT-7f3a",
        organ="colon",
        clinical_notes="polyp, 12 mm",
        priority="urgent",
        due_at="2026-12-10T12:00:00Z",
    )
    assert case["department"] == people.department.id
    assert case["status"] == "received"
    assert case["priority"] == "urgent"
    assert case["received_at"]
    for field in ["id", "accession_number", "patient_pseudonym", "organ", "clinical_notes", "assignee", "due_at"]:
        assert field in case


def test_accession_numbers_are_unique_per_department(people):
    create_case(people.owner.client, "S26-200")
    duplicate = people.colleague.client.post("/api/cases/", json={"accession_number": "S26-200"})
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["error"]
    # The same number in another department is a different case.
    create_case(people.outsider.client, "S26-200")


def test_it_requires_a_department_when_the_user_has_several(people, asgi_server):
    both = make_person(asgi_server.url, "floater", "resident", [people.department, people.other_department])
    response = both.client.post("/api/cases/", json={"accession_number": "S26-300"})
    assert response.status_code == 400
    assert "department" in response.json()["error"]
    ok = both.client.post("/api/cases/", json={"accession_number": "S26-300", "department": people.other_department.id})
    assert ok.status_code == 201
    assert ok.json()["department"] == people.other_department.id


def test_it_refuses_to_create_in_another_department(people):
    response = people.owner.client.post(
        "/api/cases/", json={"accession_number": "S26-400", "department": people.other_department.id}
    )
    assert response.status_code == 400


def test_another_departments_case_is_404(people):
    case = create_case(people.owner.client, "S26-500")
    assert people.outsider.client.get(f"/api/cases/{case['id']}/").status_code == 404
    assert people.outsider.client.patch(f"/api/cases/{case['id']}/", json={"organ": "x"}).status_code == 404
    assert people.outsider.client.get("/api/cases/").json()["count"] == 0
    assert people.colleague.client.get(f"/api/cases/{case['id']}/").status_code == 200


def test_admins_see_every_department(people):
    create_case(people.owner.client, "S26-600")
    create_case(people.outsider.client, "S26-601")
    listing = people.admin.client.get("/api/cases/").json()
    assert sorted(c["accession_number"] for c in listing["results"]) == ["S26-600", "S26-601"]
    departments = people.admin.client.get("/api/departments/").json()["results"]
    assert len(departments) == 2
    mine = people.owner.client.get("/api/departments/").json()["results"]
    assert [d["code"] for d in mine] == ["histo-north"]


def test_it_edits_a_case_and_validates_the_assignee(people):
    case = create_case(people.owner.client, "S26-700")
    edited = people.colleague.client.patch(f"/api/cases/{case['id']}/", json={"priority": "stat", "organ": "skin"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["priority"] == "stat"
    # Assignment has its own endpoint with its own rules (tests/webapp/test_worklist_rules.py).
    via_patch = people.colleague.client.patch(f"/api/cases/{case['id']}/", json={"assignee": people.owner.user.id})
    assert via_patch.status_code == 400
    assert "/assign/" in via_patch.json()["error"]
    foreign = people.admin.client.post(f"/api/cases/{case['id']}/assign/", json={"assignee": people.outsider.user.id})
    assert foreign.status_code == 400
    bad = people.owner.client.patch(f"/api/cases/{case['id']}/", json={"priority": "whenever"})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("priority")


def test_the_fast_case_representation_matches_the_declared_fields(people):
    from rest_framework import serializers as drf

    from webapp.cases.models import Case
    from webapp.cases.serializers import CaseSerializer

    created = create_case(people.owner.client, "S26-800", due_at="2026-12-10T12:00:00Z", organ="skin")
    case = Case.objects.select_related("assignee").get(pk=created["id"])
    case.triage_score = 0.25
    fast = CaseSerializer(case).data
    # The same case through DRF's generic field-by-field path.
    generic = drf.ModelSerializer.to_representation(CaseSerializer(case), case)
    assert dict(fast) == dict(generic)
    assert list(fast) == CaseSerializer.Meta.fields
