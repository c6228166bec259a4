"""Analysis REST rules: who may ask and watch, what a request may contain, and how jobs fail readably."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from tests.webapp.analysis_support import (  # noqa: F401  (*_fixture: fixtures)
    MODEL_DIR,
    Watcher,
    analysis_stack_fixture,
    ask,
    finished,
    gpu_workers_fixture,
    held_job,
    make_case,
    ready_slide,
    synthetic_slide,
    tiny_checkpoint_fixture,
    wait_for_job,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slide(people):
    return ready_slide(make_case(people.department, "S26-API"))


def _refused(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.json()


def test_another_departments_user_cannot_ask_read_cancel_or_watch(people, slide, asgi_server, tiny_checkpoint):
    from webapp.analysis.models import AnalysisJob

    outsider = people.outsider.client
    _refused(outsider.post("/api/analyses/", json={"slide": slide.pk, "task": "question", "prompt": "Why?"}),
             404, "not found")
    assert AnalysisJob.objects.count() == 0
    job = held_job(slide, people.owner.user)
    assert outsider.get(f"/api/analyses/{job.pk}/").status_code == 404
    assert outsider.post(f"/api/analyses/{job.pk}/cancel/").status_code == 404
    assert outsider.get(f"/api/analyses/?slide={slide.pk}").json()["results"] == []
    assert people.anonymous.get(f"/api/analyses/{job.pk}/").status_code == 401
    # The same department sees it; so does an admin.
    assert people.colleague.client.get(f"/api/analyses/{job.pk}/").status_code == 200
    assert people.admin.client.get(f"/api/analyses/{job.pk}/").status_code == 200

    foreign = Watcher(asgi_server.url, job.pk, outsider).wait(30)
    assert foreign.close_code == 4404 and foreign.messages == []
    anonymous = Watcher(asgi_server.url, job.pk, people.anonymous, headers={}).wait(30)
    assert anonymous.close_code == 4401 and anonymous.messages == []
    missing = Watcher(asgi_server.url, job.pk + 1000, people.owner.client).wait(30)
    assert missing.close_code == 4404
    elsewhere = Watcher(asgi_server.url, job.pk, people.owner.client, origin="https://evil.example").wait(30)
    assert isinstance(elsewhere.error, InvalidStatus) and elsewhere.error.response.status_code == 403


def test_who_may_cancel(people, slide, asgi_server, tiny_checkpoint):
    """The requester, a pathologist or an admin may cancel; a technician may not cancel another's job."""
    from webapp.analysis.models import AnalysisJob

    technician, pathologist = people.colleague, people.owner
    theirs = held_job(slide, pathologist.user)
    _refused(technician.client.post(f"/api/analyses/{theirs.pk}/cancel/"), 403,
             "only the requester, pathologists and admins")
    assert AnalysisJob.objects.get(pk=theirs.pk).status == "queued"
    own = held_job(slide, technician.user)
    assert technician.client.post(f"/api/analyses/{own.pk}/cancel/").status_code == 200
    assert pathologist.client.post(f"/api/analyses/{theirs.pk}/cancel/").json()["status"] == "cancelled"
    by_admin = held_job(slide, technician.user)
    assert people.admin.client.post(f"/api/analyses/{by_admin.pk}/cancel/").status_code == 200
    assert set(AnalysisJob.objects.values_list("status", flat=True)) == {"cancelled"}


def test_it_checks_what_is_asked(people, slide, asgi_server, tiny_checkpoint, settings):
    from webapp.wsi.models import Slide, SlideStatus

    client = people.owner.client

    def post(**fields):
        return client.post("/api/analyses/", json={"slide": slide.pk, "task": "question", "prompt": "Why?", **fields})

    _refused(post(task="astrology"), 400, "tasks: describe, cancer_detection")
    _refused(post(prompt="   "), 400, "prompt")
    _refused(post(prompt="x" * 2001), 400, "at most 2000 characters")
    _refused(post(region=[0, 0, 0, 10]), 400, "width and height must be positive")
    _refused(post(region=[0, 0, 10]), 400, "region")
    _refused(post(max_new_tokens=5000), 400, "at most 1024")
    pending = Slide.objects.create(case=slide.case, stored_path="none", sha256="0" * 64, size=1)
    _refused(post(slide=pending.pk), 400, "is pending; only ready slides")
    Slide.objects.filter(pk=pending.pk).update(status=SlideStatus.FAILED, failure_reason="not a slide file")
    _refused(post(slide=pending.pk), 400, "is failed (not a slide file)")

    model = client.get("/api/analyses/model/").json()
    assert model["available"] is True and model["demo_weights"] is True
    assert "cancer_detection" in model["tasks"] and model["name"] == MODEL_DIR.name


def test_job_creation_is_rate_limited_per_user(people, slide, asgi_server, tiny_checkpoint):
    colleague = people.colleague.client
    body = {"slide": slide.pk, "task": "astrology", "prompt": "Why?"}
    statuses = [colleague.post("/api/analyses/", json=body).status_code for _ in range(13)]
    assert statuses == [400] * 12 + [429], statuses
    assert "Retry-After" in colleague.post("/api/analyses/", json=body).headers
    # Another user is not held back by the colleague's requests.
    assert people.owner.client.post("/api/analyses/", json=body).status_code == 400


def test_a_slide_that_cannot_be_read_gives_a_failed_job(people, analysis_stack, asgi_server):
    from webapp.wsi.storage import slide_path

    # A slide of its own (no cached features), whose file is damaged after ingestion.
    slide = ready_slide(make_case(people.department, "S26-DAMAGED"), synthetic_slide((1536, 1024)))
    slide_path(slide.stored_path).write_bytes(b"II*\x00 this is no longer a slide")
    created = ask(people.owner.client, slide.pk)
    watcher = Watcher(asgi_server.url, created["id"], people.owner.client)
    job = wait_for_job(people.owner.client, created["id"], finished)
    assert job["status"] == "failed"
    assert job["error"].startswith("cannot read slide"), job["error"]
    watcher.wait(30)
    assert watcher.messages[-1] == {"type": "error", "seq": watcher.messages[-1]["seq"], "error": job["error"]}


def test_a_missing_model_gives_a_failed_job(people, slide, settings, tmp_path):
    """The worker's run function, in this process, with OMNIPATH_MODEL pointing at nothing."""
    from webapp.analysis import streaming
    from webapp.analysis.models import AnalysisJob
    from webapp.analysis.runner import run_job

    settings.OMNIPATH_MODEL = tmp_path / "no-such-model"
    settings.ANALYSIS_LEASE_SECONDS = 2
    job = held_job(slide, people.owner.user)
    outcome = run_job(job.pk, "test-worker")
    assert outcome.status == "failed"
    job = AnalysisJob.objects.get(pk=job.pk)
    assert job.status == "failed" and "no-such-model has no config.json" in job.error
    assert "init-tiny" in job.error  # says what to do
    log = streaming.read_log(job.stream_name)
    assert [m["type"] for m in log] == ["status", "status", "error"]
    assert log[-1]["error"] == job.error
    assert people.owner.client.get(f"/api/analyses/{job.pk}/").json()["error"] == job.error


def test_segmentation_masks_become_annotations_made_by_the_model(people, slide, analysis_stack, asgi_server):
    client = people.owner.client
    created = ask(client, slide.pk, task="segmentation", prompt="Outline the tumour", max_new_tokens=4)
    job = wait_for_job(client, created["id"], finished)
    assert job["status"] == "succeeded", job
    assert job["annotation_ids"], "the tiny model's random mask found nothing to outline"
    annotation = client.get(f"/api/annotations/{job['annotation_ids'][0]}/").json()
    assert annotation["provenance"] == {"kind": "model", "model_id": job["model"], "job_id": job["id"]}
    assert annotation["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_a_visibility_timeout_shorter_than_a_job_is_reported(settings):
    from django.core.management import call_command

    from webapp.analysis.checks import check_visibility_timeout

    settings.BROKER_VISIBILITY_TIMEOUT, settings.ANALYSIS_TIME_LIMIT = 3600, 1200
    assert check_visibility_timeout() == []
    settings.BROKER_VISIBILITY_TIMEOUT = 600
    [warning] = check_visibility_timeout()
    assert warning.id == "analysis.W001" and "600 s" in warning.msg and "1200 s" in warning.msg
    call_command("check")  # a warning, not an error: start-up goes on
