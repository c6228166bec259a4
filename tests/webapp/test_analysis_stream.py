"""Ask OmniPath end to end: REST → Celery `gpu` worker (tiny checkpoint on CPU) → Redis → ASGI → websocket.

Real PostgreSQL, Redis, uvicorn and two `celery worker -Q gpu` processes (tests/webapp/analysis_support.py).
"""

from __future__ import annotations

import time

import pytest

from tests.webapp.analysis_support import (  # noqa: F401  (*_fixture: fixtures)
    Watcher,
    analysis_stack_fixture,
    ask,
    assert_clean_sequence,
    gpu_workers_fixture,
    held_job,
    make_case,
    ready_slide,
    text_of,
    tiny_checkpoint_fixture,
    wait_for_job,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slide(people):
    return ready_slide(make_case(people.department, "S26-ASK"))


def test_it_streams_the_answer_to_every_watcher_and_stores_it(people, slide, analysis_stack, asgi_server):
    from webapp.analysis.models import AnalysisJob
    from webapp.audit.models import AuditEvent
    from webapp.cases.models import Case

    client = people.owner.client
    created = ask(client, slide.pk, task="cancer_detection", max_new_tokens=40)
    assert created["status"] == "queued" and created["demo_weights"] is True
    first = Watcher(asgi_server.url, created["id"], client)
    second = Watcher(asgi_server.url, created["id"], people.colleague.client)
    first.wait(), second.wait()
    assert first.error is None and second.error is None, (first.error, second.error)

    messages = first.messages
    assert second.messages == messages  # two watchers, identical streams
    assert_clean_sequence(messages)
    assert messages[0] == {"type": "status", "seq": 1, "status": "queued", "phase": "queued", "progress": 0.0}
    assert {"running"} <= {m["status"] for m in messages if m["type"] == "status"}
    assert {m["phase"] for m in messages if m["type"] == "status"} >= {"extracting", "selecting", "generating"}
    done = messages[-1]
    assert done["type"] == "done" and done["status"] == "succeeded" and done["demo_weights"] is True
    assert "restart" not in first.types()

    job = client.get(f"/api/analyses/{created['id']}/").json()
    assert job["status"] == "succeeded" and job["phase"] == "done"
    assert job["text"] == done["text"] == text_of(messages) != ""
    assert job["result"]["generated_tokens"] == 40
    assert job["regions"] == done["regions"] and len(job["regions"]) > 0
    assert all(len(r["box"]) == 4 and r["magnification"] == 20 for r in job["regions"])
    assert job["model"].startswith("omnipath:omnipath-tiny@") and job["demo_weights"] is True
    assert "not a diagnosis" in job["notice"]
    assert job["timings"]["total"] > 0 and job["attempt"] == 1

    # A late joiner gets the whole log, exactly as the live watchers did.
    late = Watcher(asgi_server.url, created["id"], client).wait()
    assert late.messages == messages

    # Who asked what about which slide, with which model, and what came back.
    events = {e.action: e for e in AuditEvent.objects.filter(object_type="analysisjob", object_id=created["id"])}
    assert events["analysis.requested"].actor_id == people.owner.user.pk
    assert events["analysis.requested"].after["prompt"] == "Is there carcinoma?"
    assert events["analysis.succeeded"].after["text"] == job["text"]
    assert events["analysis.succeeded"].after["model"] == job["model"]
    # The department's triage task: the case's AI triage score comes from this job.
    case = Case.objects.get(pk=slide.case_id)
    assert case.triage_job_id == created["id"]
    assert case.triage_score == pytest.approx(AnalysisJob.objects.get(pk=created["id"]).result["task_scores"]["cancer"])

    listed = client.get(f"/api/analyses/?slide={slide.pk}").json()["results"]
    assert [j["id"] for j in listed] == [created["id"]]


def test_a_reconnect_mid_stream_misses_nothing_and_repeats_nothing(people, slide, analysis_stack, asgi_server):
    client = people.owner.client
    created = ask(client, slide.pk, max_new_tokens=160)
    before = Watcher(asgi_server.url, created["id"], client, stop_after=10).wait()
    assert before.error is None and before.tokens() == 10
    last = before.messages[-1]["seq"]
    after = Watcher(asgi_server.url, created["id"], client, after=last).wait()
    assert after.error is None
    assert after.messages[0]["seq"] == last + 1
    messages = before.messages + after.messages
    assert_clean_sequence(messages)
    assert after.types()[-1] == "done"
    assert text_of(messages) == after.messages[-1]["text"] == client.get(f"/api/analyses/{created['id']}/").json()["text"]
    assert after.tokens() > 0, "the reconnect happened after the job ended: nothing was tested mid-stream"


def test_cancel_stops_generation_within_a_second(people, slide, analysis_stack, asgi_server):
    from webapp.analysis.models import AnalysisJob

    client = people.owner.client
    created = ask(client, slide.pk, max_new_tokens=600)
    watcher = Watcher(asgi_server.url, created["id"], client)
    watcher.wait_tokens(5)
    asked_at = time.time()
    response = client.post(f"/api/analyses/{created['id']}/cancel/")
    assert response.status_code == 202, response.text
    assert response.json()["cancel_requested"] is True
    watcher.wait(30)
    done = watcher.messages[-1]
    assert done["type"] == "done" and done["status"] == "cancelled"
    last_token_at = max(m["at"] for m in watcher.messages if m["type"] == "token")
    assert last_token_at - asked_at < 1.0, "the worker kept generating for more than a second"
    job = AnalysisJob.objects.get(pk=created["id"])
    assert job.status == "cancelled"
    assert (job.finished_at - job.cancel_requested_at).total_seconds() < 1.0
    assert job.text == done["text"] == text_of(watcher.messages)
    assert 5 <= job.result["generated_tokens"] < 600
    assert client.post(f"/api/analyses/{created['id']}/cancel/").status_code == 409


def test_a_queued_job_is_cancelled_at_once(people, slide, asgi_server):
    job = held_job(slide, people.owner.user)
    response = people.owner.client.post(f"/api/analyses/{job.pk}/cancel/")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"


def test_an_idle_websocket_stays_open(people, slide, asgi_server):
    """redis-py 8 times out idle reads after 5 s unless the channel layer says otherwise (settings.py)."""
    job = held_job(slide, people.owner.user)
    watcher = Watcher(asgi_server.url, job.pk, people.owner.client)
    assert watcher.opened.wait(30)
    time.sleep(15.5)
    assert not watcher.ended.is_set(), (watcher.close_code, watcher.error)
    # The cancel's messages travel through the channel layer to the socket that sat idle.
    assert people.owner.client.post(f"/api/analyses/{job.pk}/cancel/").status_code == 200
    watcher.wait(15)
    assert watcher.error is None
    assert watcher.types()[-2:] == ["status", "done"]
    assert watcher.messages[-1]["status"] == "cancelled"
