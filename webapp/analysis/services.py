"""Analysis jobs' rules: creating (checked, audited, queued after commit), cancelling, and the worker's
state changes (start an attempt, finish, fail), each one transaction on the job row.

Fencing: a worker's writes name the attempt it runs (`attempt`); a finish for an older attempt (a worker
that lost the job to a re-run) changes nothing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp import audit
from webapp.analysis import streaming
from webapp.analysis.catalog import configured_model
from webapp.analysis.models import FINISHED, AnalysisJob, JobStatus, Phase
from webapp.api import Conflict, Forbidden, Invalid, NotFound, ServiceError
from webapp.wsi.models import Slide, SlideStatus

logger = logging.getLogger(__name__)

# The triage score a task's result gives a case: the probability head of that task (see cases/services.py).
TRIAGE_SCORE_KEYS = {
    "cancer_detection": "cancer",
    "vascular_invasion": "vascular_invasion",
    "neural_invasion": "neural_invasion",
}
DEMO_NOTICE = "demo weights: a tiny randomly initialised model wrote this text; it is noise, not a diagnosis"


class AnalysisError(ServiceError):
    """A refused request or change; `status` is the HTTP status the API answers with."""


class AnalysisInvalid(AnalysisError, Invalid):
    pass


class AnalysisNotFound(AnalysisError, NotFound):
    pass


class AnalysisForbidden(AnalysisError, Forbidden):
    pass


class AnalysisConflict(AnalysisError, Conflict):
    pass


# -- the web side ------------------------------------------------------------------------------------------

def create_job(actor, *, slide_id: int, task: str, prompt: str, region: list[float] | None = None,
               max_new_tokens: int | None = None) -> AnalysisJob:
    """Check a request, store the job `queued`, audit it, and queue it on `gpu` once committed.

    Refused (AnalysisError): a slide the actor may not see (404, like one that does not exist), a slide
    that is not `ready`, a task the configured model does not answer, a blank or too long prompt. A model
    that cannot be read is not a refusal: the job fails on the worker with the reason.
    """
    slide = Slide.objects.visible_to(actor).select_related("case").filter(pk=slide_id).first()
    if slide is None:
        raise AnalysisNotFound(f"slide {slide_id} not found")
    if slide.status != SlideStatus.READY:
        reason = f" ({slide.failure_reason})" if slide.status == SlideStatus.FAILED and slide.failure_reason else ""
        raise AnalysisInvalid(f"slide: slide {slide.pk} is {slide.status}{reason}; only ready slides can be analysed")
    prompt = prompt.strip()
    if not prompt:
        raise AnalysisInvalid("prompt: ask a question about the slide")
    if len(prompt) > settings.ANALYSIS_PROMPT_MAX_CHARS:
        raise AnalysisInvalid(f"prompt: at most {settings.ANALYSIS_PROMPT_MAX_CHARS} characters")
    model = configured_model()
    if model.available and task not in model.tasks:
        raise AnalysisInvalid(f"task: the model does not answer {task!r}; tasks: {', '.join(model.tasks)}")
    if region is not None:
        region = _checked_region(region)
    with transaction.atomic():
        job = AnalysisJob.objects.create(
            slide=slide, case=slide.case, requester=actor, task=task, prompt=prompt, region=region,
            max_new_tokens=max_new_tokens, backend=model.backend, demo_weights=model.demo_weights,
            priority=slide.case.priority,
        )
        audit.record(actor, "analysis.requested", job, case=slide.case, after={
            "slide": slide.pk, "task": task, "prompt": prompt, "region": region, "backend": model.backend,
            "model": model.name})
        transaction.on_commit(lambda: _announce_and_enqueue(job))
    return job


def _checked_region(region: list[float]) -> list[float]:
    if not (isinstance(region, list) and len(region) == 4
            and all(type(v) in (int, float) and math.isfinite(v) for v in region)):
        raise AnalysisInvalid("region: expected [x, y, w, h], four finite numbers in level-0 pixels")
    if region[2] <= 0 or region[3] <= 0:
        raise AnalysisInvalid("region: width and height must be positive")
    return [float(v) for v in region]


def _announce_and_enqueue(job: AnalysisJob) -> None:
    """Open the job's log with `status: queued` (seq 1), then queue it: the worker's messages come after."""
    from webapp.analysis.tasks import analyze

    job_id = job.pk
    try:
        streaming.append(job_id, job.stream_name, [job.status_message()])
        analyze.apply_async((job_id,), priority=job.broker_priority)
    except Exception as exc:  # noqa: BLE001  (a broker outage fails the job visibly instead of leaving it queued)
        logger.exception("analysis %s: could not queue", job_id)
        fail_job(job_id, f"could not queue the analysis ({type(exc).__name__}); ask again later")


def cancel_job(actor, job: AnalysisJob) -> AnalysisJob:
    """Cancel a job: a queued one at once; a running one is stopped by its worker within a second."""
    from webapp.accounts.permissions import can_cancel_analysis

    if not can_cancel_analysis(actor, job):
        raise AnalysisForbidden("only the requester, pathologists and admins can cancel an analysis")
    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise AnalysisConflict(f"the analysis has already {job.status}")
        job.cancel_requested_at = job.cancel_requested_at or timezone.now()
        fields = ["cancel_requested_at"]
        if job.status == JobStatus.QUEUED:
            job.status, job.phase, job.finished_at = JobStatus.CANCELLED, Phase.DONE, job.cancel_requested_at
            fields += ["status", "phase", "finished_at"]
        job.save(update_fields=fields)
        audit.record(actor, "analysis.cancel_requested", job, case=job.case, after={"status": job.status})
        if job.status == JobStatus.CANCELLED:
            # Never started: no worker will write its log, so the web process ends it.
            final = [job.status_message(), job.final_message()]
            transaction.on_commit(lambda: streaming.append(job.pk, job.stream_name, final))
        else:
            transaction.on_commit(lambda: streaming.request_cancel(job.stream_name))
    return job


# -- the worker side ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Start:
    """What `start_attempt` decided. `job` is None when there is nothing to run (missing or finished)."""

    job: AnalysisJob | None
    attempt: int = 0
    restart: bool = False
    slide_path: str = ""
    why: str = ""


def start_attempt(job_id: int, worker: str) -> Start:
    """Mark the job running for a new attempt by `worker` (the caller holds the job's lease)."""
    from webapp.wsi.storage import slide_path

    with transaction.atomic():
        job = AnalysisJob.objects.select_for_update().select_related("slide").filter(pk=job_id).first()
        if job is None:
            logger.warning("analysis %s: no such job (deleted?); nothing to run", job_id)
            return Start(None, why="missing")
        if job.is_finished:
            return Start(None, why=f"already {job.status}")
        now = timezone.now()
        job.attempt += 1
        job.status, job.phase, job.progress, job.worker, job.started_at = (
            JobStatus.RUNNING, Phase.QUEUED, 0.0, worker, now)
        job.timings = {**job.timings, "queued": (now - job.created_at).total_seconds()}
        job.save(update_fields=["attempt", "status", "phase", "progress", "worker", "started_at", "timings"])
    return Start(job, job.attempt, job.attempt > 1, str(slide_path(job.slide.stored_path)))


def set_phase(job_id: int, attempt: int, phase: str, progress: float) -> None:
    AnalysisJob.objects.filter(pk=job_id, attempt=attempt, status=JobStatus.RUNNING).update(
        phase=phase, progress=progress)


def finish_job(job_id: int, attempt: int, *, result: dict[str, Any], cancelled: bool) -> AnalysisJob | None:
    """Store a finished attempt's result: `succeeded` (or `cancelled` with the partial text).

    Segmentation polygons become annotations made by the model for this job; a finished analysis of the
    department's triage task sets the case's triage score. Returns None when the attempt is stale.
    """
    from webapp.cases.services import update_triage_score

    with transaction.atomic():
        job = (AnalysisJob.objects.select_for_update().select_related("slide", "case__department")
               .filter(pk=job_id, attempt=attempt, status=JobStatus.RUNNING).first())
        if job is None:
            logger.warning("analysis %s: attempt %s finished after losing the job; result dropped", job_id, attempt)
            return None
        job.status = JobStatus.CANCELLED if cancelled else JobStatus.SUCCEEDED
        job.phase, job.progress, job.finished_at = Phase.DONE, 1.0, timezone.now()
        job.text = result["text"]
        job.model_id = result["model"]
        job.demo_weights = bool(result.get("tiny_model", job.demo_weights))
        job.regions = [{"box": list(r["l0_box"]), "score": r["score"], "magnification": r["magnification"]}
                       for r in result.get("regions", [])]
        job.timings = {**job.timings, **result.get("timings", {})}
        job.result = {key: result.get(key) for key in (
            "task_scores", "visual_tokens", "visual_token_budget", "tiles_encoded", "tiles_cached", "tissue_tiles",
            "generated_tokens", "notes")}
        if not cancelled and result.get("polygons"):
            job.annotation_ids = _annotations_from_masks(job, result["polygons"])
        job.save()
        audit.record(None, f"analysis.{job.status}", job, case=job.case, after={
            "requester": job.requester_id, "slide": job.slide_id, "task": job.task, "prompt": job.prompt,
            "model": job.model_id, "demo_weights": job.demo_weights, "text": job.text, "regions": job.regions,
            "task_scores": job.result.get("task_scores"), "annotations": job.annotation_ids,
            "attempt": job.attempt})
    score_key = TRIAGE_SCORE_KEYS.get(job.task)
    scores = job.result.get("task_scores") or {}
    if (job.status == JobStatus.SUCCEEDED and job.task == job.case.department.triage_task
            and score_key is not None and scores.get(score_key) is not None):
        try:
            update_triage_score(job.case_id, scores[score_key], job.pk, scored_at=job.finished_at)
        except Exception:  # noqa: BLE001  (the answer is stored; a triage problem must not lose its stream's end)
            logger.exception("analysis %s: could not set the case's triage score", job.pk)
    return job


def fail_job(job_id: int, error: str, *, attempt: int | None = None) -> AnalysisJob | None:
    """Mark an unfinished job failed with a reason a person can act on (any attempt when `attempt` is None)."""
    with transaction.atomic():
        jobs = AnalysisJob.objects.select_for_update().select_related("case").filter(pk=job_id)
        if attempt is not None:
            jobs = jobs.filter(attempt=attempt)
        job = jobs.exclude(status__in=FINISHED).first()
        if job is None:
            return None
        job.status, job.phase, job.error, job.finished_at = JobStatus.FAILED, Phase.DONE, error, timezone.now()
        job.save(update_fields=["status", "phase", "error", "finished_at"])
        audit.record(None, "analysis.failed", job, case=job.case, after={
            "requester": job.requester_id, "slide": job.slide_id, "task": job.task, "prompt": job.prompt,
            "model": job.model_id, "error": error, "attempt": job.attempt})
    return job


def _annotations_from_masks(job: AnalysisJob, polygons: list) -> list[int]:
    """Mask polygons (GeoJSON Polygon coordinates, level-0 px) → annotations with the model's provenance."""
    from webapp.annotations.geometry import GeometryError, clean_geometry
    from webapp.annotations.services import create_annotation

    ids = []
    for index, coordinates in enumerate(polygons[: settings.ANALYSIS_MAX_MASK_POLYGONS]):
        try:
            clean = clean_geometry({"type": "Polygon", "coordinates": coordinates})
        except GeometryError as exc:
            logger.info("analysis %s: mask polygon %s skipped: %s", job.pk, index, exc)
            continue
        annotation = create_annotation(
            job.slide, None, geometry=clean.geometry, bbox=clean.bbox, shape=clean.geometry["type"].lower(),
            name=f"{job.task} mask (analysis {job.pk})", model_id=job.model_id, job_id=job.pk)
        ids.append(annotation.pk)
    return ids
