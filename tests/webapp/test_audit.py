"""The audit trail: every case change with before → after, views of cases and slides, append-only,
readable by admins only."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tests.conftest import create_case
from tests.webapp.worklist_fixtures import make_case, make_slide

pytestmark = pytest.mark.django_db(transaction=True)


def _trail(people, case_id: int) -> list[dict]:
    response = people.admin.client.get(f"/api/audit/?case={case_id}&page_size=500")
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_every_change_lands_in_the_trail_with_before_and_after(people):
    owner, admin = people.owner, people.admin
    case = create_case(owner.client, "AU-1", organ="colon", priority="routine")
    cid = case["id"]
    people.colleague.client.patch(f"/api/cases/{cid}/", json={"organ": "rectum", "clinical_notes": "2 cores"})
    people.colleague.client.patch(f"/api/cases/{cid}/", json={"priority": "stat", "organ": "rectum"})
    owner.client.post(f"/api/cases/{cid}/assign/", json={"assignee": "me"})
    owner.client.post(f"/api/cases/{cid}/status/", json={"status": "in_review"})
    owner.client.post(f"/api/cases/{cid}/status/", json={"status": "signed_out"})
    owner.client.post(f"/api/cases/{cid}/addenda/", json={"text": "HER2 pending"})
    # Refused changes leave no trace.
    assert owner.client.patch(f"/api/cases/{cid}/", json={"organ": "x"}).status_code == 409

    trail = _trail(people, cid)
    summary = [(e["action"], e["actor_username"], e["before"], e["after"]) for e in trail]
    created = summary[0]
    assert created[:3] == ("case.created", "owner", {})
    assert created[3]["accession_number"] == "AU-1" and created[3]["priority"] == "routine"
    assert created[3]["department"] == people.department.id and created[3]["status"] == "received"
    assert summary[1:5] == [
        ("case.updated", "colleague", {"organ": "colon", "clinical_notes": ""},
         {"organ": "rectum", "clinical_notes": "2 cores"}),
        ("case.priority_changed", "colleague", {"priority": "routine"}, {"priority": "stat"}),
        ("case.assigned", "owner", {"assignee": None}, {"assignee": owner.user.id}),
        ("case.status_changed", "owner", {"status": "received"}, {"status": "in_review"}),
    ]
    signed = trail[5]
    assert (signed["action"], signed["before"], signed["after"]["status"]) == (
        "case.status_changed", {"status": "in_review"}, "signed_out")
    assert signed["after"]["signed_out_by"] == owner.user.id and signed["after"]["signed_out_at"]
    addendum = trail[6]
    assert (addendum["action"], addendum["object_type"], addendum["after"]) == (
        "case.addendum_added", "caseaddendum", {"text": "HER2 pending"})
    assert len(trail) == 7
    for event in trail:
        assert event["at"] and event["case"] == cid and event["department"] == people.department.id
    assert admin.client.get(f"/api/audit/?case={cid}&action=case.assigned").json()["count"] == 1


def test_viewing_a_case_or_a_slide_is_audited_but_listing_is_not(people):
    case = make_case(people.department, "AU-2")
    slide = make_slide(case)
    people.owner.client.get("/api/cases/")
    people.owner.client.get(f"/api/cases/{case.id}/")
    people.colleague.client.get(f"/api/slides/{slide.id}/")
    people.outsider.client.get(f"/api/cases/{case.id}/")  # 404: nothing seen, nothing recorded
    trail = _trail(people, case.id)
    assert [(e["action"], e["actor_username"], e["object_type"], e["object_id"]) for e in trail] == [
        ("case.viewed", "owner", "case", case.id),
        ("slide.viewed", "colleague", "slide", slide.id),
    ]


def test_the_trail_is_readable_by_admins_only(people):
    case = create_case(people.owner.client, "AU-3")
    for person in [people.owner, people.colleague, people.outsider]:
        refused = person.client.get(f"/api/audit/?case={case['id']}")
        assert refused.status_code == 403
        assert "admin" in refused.json()["error"]
    assert people.anonymous.get("/api/audit/").status_code == 401
    assert people.admin.client.get("/api/audit/?case=x").status_code == 400


def test_the_trail_is_append_only_in_the_orm_and_in_the_database(people):
    from webapp.audit.models import AuditEvent, AuditImmutable

    create_case(people.owner.client, "AU-4")
    event = AuditEvent.objects.get(action="case.created")
    event.action = "case.nothing_happened"
    with pytest.raises(AuditImmutable):
        event.save()
    with pytest.raises(AuditImmutable):
        event.delete()
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(AuditImmutable):
        AuditEvent.objects.all().delete()
    # Below the ORM the database trigger refuses too.
    for statement in ["UPDATE audit_auditevent SET action = 'forged'", "DELETE FROM audit_auditevent"]:
        with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert AuditEvent.objects.get(pk=event.pk).action == "case.created"
    # Removing what the trail refers to leaves the trail alone.
    from webapp.cases.models import Case

    Case.objects.filter(accession_number="AU-4").delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_system_changes_are_recorded_without_an_actor(people):
    from webapp.cases.services import update_triage_score

    case = make_case(people.department, "AU-5")
    update_triage_score(case.id, 0.42, job_id=12)
    (event,) = _trail(people, case.id)
    assert (event["action"], event["actor"], event["actor_username"]) == ("case.triage_scored", None, "")
    assert event["before"] == {"triage_score": None, "triage_job_id": None}
    assert event["after"] == {"triage_score": 0.42, "triage_job_id": 12}
