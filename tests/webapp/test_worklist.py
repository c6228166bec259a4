"""The worklist: filters, ordering, counts, AI triage score, turnaround, live updates over websockets."""

from __future__ import annotations

import pytest

from tests.conftest import create_case
from tests.webapp.worklist_fixtures import T0, events_until, hours, make_case, ready, receive

pytestmark = pytest.mark.django_db(transaction=True)


def _accessions(client, query: str = "") -> list[str]:
    response = client.get(f"/api/cases/{query}")
    assert response.status_code == 200, response.text
    return [case["accession_number"] for case in response.json()["results"]]


@pytest.fixture
def worklist(people):
    """Six cases of the owner's department and one of another department."""
    from webapp.cases.models import CaseStatus

    dept = people.department
    owner = people.owner.user
    return {
        "R-late": make_case(dept, "R-late", priority="routine", due_at=T0 + hours(48), organ="colon"),
        "R-nodue": make_case(dept, "R-nodue", priority="routine", organ="skin", received_at=T0 - hours(5)),
        "R-early": make_case(dept, "R-early", priority="routine", due_at=T0 + hours(24), organ="colon",
                             patient_pseudonym="PT-ab12", assignee=owner, status=CaseStatus.IN_REVIEW),
        "U-1": make_case(dept, "U-1", priority="urgent", due_at=T0 + hours(30), triage_score=0.2),
        "S-1": make_case(dept, "S-1", priority="stat", organ="Colon", triage_score=0.9, assignee=owner),
        "S-2": make_case(dept, "S-2", priority="stat", due_at=T0 + hours(2), status=CaseStatus.SIGNED_OUT),
        "other": make_case(people.other_department, "OTHER-1", priority="stat"),
    }


def test_default_order_is_stat_urgent_routine_then_due_then_received(people, worklist):
    assert _accessions(people.owner.client) == ["S-2", "S-1", "U-1", "R-early", "R-late", "R-nodue"]


def test_it_filters_by_status_priority_organ_and_due_time(people, worklist):
    client = people.owner.client
    assert _accessions(client, "?status=in_review,signed_out") == ["S-2", "R-early"]
    assert _accessions(client, "?priority=stat") == ["S-2", "S-1"]
    assert _accessions(client, "?priority=routine&organ=COLON") == ["R-early", "R-late"]
    assert _accessions(client, "?due_before=2026-12-02T09:00:00Z") == ["S-2", "R-early"]
    assert _accessions(client, "?due_before=2026-12-02") == ["S-2"]


def test_it_filters_by_assignee(people, worklist):
    client = people.owner.client
    assert _accessions(client, "?assignee=me") == ["S-1", "R-early"]
    assert _accessions(client, f"?assignee={people.owner.user.id}") == ["S-1", "R-early"]
    assert _accessions(client, "?assignee=none") == ["S-2", "U-1", "R-late", "R-nodue"]
    assert _accessions(people.colleague.client, "?assignee=me") == []


def test_it_searches_accession_numbers_and_pseudonyms(people, worklist):
    assert _accessions(people.owner.client, "?q=ab12") == ["R-early"]
    assert _accessions(people.owner.client, "?q=r-N") == ["R-nodue"]
    assert _accessions(people.owner.client, "?q=OTHER") == []


def test_it_refuses_bad_filter_values(people, worklist):
    for query in ["?status=done", "?priority=asap", "?assignee=someone", "?due_before=tomorrow",
                  "?has_ai_result=maybe", "?min_score=2", "?ordering=random"]:
        response = people.owner.client.get(f"/api/cases/{query}")
        assert response.status_code == 400, query
        assert response.json()["error"].split(":")[0] in query


def test_counts_per_status_follow_the_other_filters_and_departments(people, worklist):
    counts = people.owner.client.get("/api/cases/counts/").json()
    assert counts == {"received": 4, "in_review": 1, "signed_out": 1, "total": 6}
    stat = people.owner.client.get("/api/cases/counts/?priority=stat&status=received").json()
    assert stat == {"received": 1, "in_review": 0, "signed_out": 1, "total": 2}
    assert people.outsider.client.get("/api/cases/counts/").json()["total"] == 1
    assert people.admin.client.get("/api/cases/counts/").json()["total"] == 7


def test_it_paginates_the_worklist(people, worklist):
    page = people.owner.client.get("/api/cases/?page_size=4").json()
    assert page["count"] == 6
    assert [c["accession_number"] for c in page["results"]] == ["S-2", "S-1", "U-1", "R-early"]
    rest = people.owner.client.get("/api/cases/?page_size=4&page=2").json()
    assert [c["accession_number"] for c in rest["results"]] == ["R-late", "R-nodue"]


def test_update_triage_score_sets_the_score_and_ignores_older_results(people, worklist):
    from webapp.cases.services import update_triage_score

    case = worklist["R-late"]
    updated = update_triage_score(case.id, 0.75, job_id=41, scored_at=T0 + hours(2))
    assert (updated.triage_score, updated.triage_job_id) == (0.75, 41)
    # A job that finished earlier but reports later does not overwrite the newer score.
    stale = update_triage_score(case.id, 0.1, job_id=40, scored_at=T0 + hours(1))
    assert (stale.triage_score, stale.triage_job_id) == (0.75, 41)
    shown = people.owner.client.get(f"/api/cases/{case.id}/").json()
    assert shown["triage_score"] == 0.75 and shown["triage_job_id"] == 41 and shown["triage_scored_at"]

    assert update_triage_score(999_999, 0.5) is None
    for bad in [-0.1, 1.5, float("nan"), "0.5", True]:
        with pytest.raises(ValueError):
            update_triage_score(case.id, bad)
    # Signed out: read-only, the score stays as it was.
    assert update_triage_score(worklist["S-2"].id, 0.99).triage_score is None


def test_department_triage_task_defaults_to_cancer_detection(people):
    assert people.department.triage_task == "cancer_detection"


def test_it_filters_and_sorts_by_ai_score(people, worklist):
    client = people.owner.client
    assert _accessions(client, "?has_ai_result=true") == ["S-1", "U-1"]
    assert _accessions(client, "?has_ai_result=false") == ["S-2", "R-early", "R-late", "R-nodue"]
    assert _accessions(client, "?min_score=0.5") == ["S-1"]
    # Highest score first; unscored cases after, in worklist order.
    assert _accessions(client, "?ordering=-ai_score") == ["S-1", "U-1", "S-2", "R-early", "R-late", "R-nodue"]
    assert _accessions(client, "?ordering=ai_score")[:2] == ["U-1", "S-1"]


def test_turnaround_gives_median_and_p90_hours_per_priority(people):
    from webapp.cases.models import CaseStatus

    def signed(accession, priority, taken_hours, department=people.department):
        make_case(department, accession, priority=priority, status=CaseStatus.SIGNED_OUT,
                  signed_out_at=T0 + hours(taken_hours))

    for n, taken in enumerate([1, 2, 3, 4, 10]):
        signed(f"S-{n}", "stat", taken)
    for n, taken in enumerate([24, 48]):
        signed(f"R-{n}", "routine", taken)
    signed("OTHER-1", "stat", 500, department=people.other_department)
    make_case(people.department, "OPEN-1", priority="stat")  # not signed out: not counted

    figures = people.owner.client.get("/api/stats/turnaround/").json()
    assert figures["unit"] == "hours"
    by = {row["priority"]: row for row in figures["by_priority"]}
    assert list(by) == ["stat", "urgent", "routine"]
    assert by["stat"] == {"priority": "stat", "count": 5, "median_hours": 3.0, "p90_hours": 7.6}
    assert by["urgent"] == {"priority": "urgent", "count": 0, "median_hours": None, "p90_hours": None}
    assert by["routine"] == {"priority": "routine", "count": 2, "median_hours": 36.0, "p90_hours": 45.6}
    everything = people.admin.client.get("/api/stats/turnaround/").json()
    assert {row["priority"]: row["count"] for row in everything["by_priority"]}["stat"] == 6
    window = people.owner.client.get("/api/stats/turnaround/?since=2026-12-01T09:30:00Z&until=2026-12-01T12:00Z")
    assert {row["priority"]: row["count"] for row in window.json()["by_priority"]} == {
        "stat": 2, "urgent": 0, "routine": 0}


def test_live_worklist_event_reaches_colleagues_after_commit_and_not_other_departments(people, asgi_server):
    url = asgi_server.url
    with ready(url, people.colleague) as colleague, ready(url, people.outsider) as outsider, \
            ready(url, people.admin) as admin:
        case = create_case(people.owner.client, "LIVE-1", priority="routine")
        created = events_until(colleague, "case.created", case["id"])
        assert created["case"]["accession_number"] == "LIVE-1"
        assert events_until(admin, "case.created", case["id"])["case"]["department"] == people.department.id

        assert people.owner.client.post(f"/api/cases/{case['id']}/assign/", json={"assignee": "me"}).status_code == 200
        assigned = events_until(colleague, "case.assigned", case["id"])
        assert assigned["case"]["assignee"] == people.owner.user.id

        people.colleague.client.patch(f"/api/cases/{case['id']}/", json={"priority": "stat"})
        assert events_until(colleague, "case.priority_changed", case["id"])["case"]["priority"] == "stat"

        people.owner.client.post(f"/api/cases/{case['id']}/status/", json={"status": "in_review"})
        assert events_until(colleague, "case.status_changed", case["id"])["case"]["status"] == "in_review"

        from webapp.cases.services import update_triage_score

        update_triage_score(case["id"], 0.66, job_id=7)
        assert events_until(colleague, "case.triage_scored", case["id"])["case"]["triage_score"] == 0.66

        # The other department's worklist heard nothing; its own case does reach it.
        mine = create_case(people.outsider.client, "LIVE-OTHER")
        message = receive(outsider)
        assert (message["event"], message["case"]["id"]) == ("case.created", mine["id"])


def test_a_refused_change_sends_no_event(people, asgi_server):
    case = create_case(people.owner.client, "LIVE-2")
    with ready(asgi_server.url, people.owner) as owner:
        # A technician cannot sign out: nothing is written, nothing is announced.
        refused = people.colleague.client.post(f"/api/cases/{case['id']}/status/", json={"status": "signed_out"})
        assert refused.status_code == 403
        people.owner.client.patch(f"/api/cases/{case['id']}/", json={"organ": "liver"})
        message = receive(owner)
        assert (message["event"], message["case"]["organ"]) == ("case.updated", "liver")
