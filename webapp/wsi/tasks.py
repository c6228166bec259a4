"""Celery tasks of the `ingest` queue (routing: CELERY_TASK_ROUTES in settings)."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from webapp.wsi.ingest import INTERNAL_ERROR, ingest_slide, mark_failed

logger = logging.getLogger(__name__)


class IngestTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Also reached when the worker child dies mid-task (WorkerLostError) or hits the hard time limit.
        slide_id = kwargs.get("slide_id", args[0] if args else None)
        if slide_id is not None:
            mark_failed(int(slide_id), INTERNAL_ERROR)


@shared_task(
    base=IngestTask,
    name="webapp.wsi.tasks.ingest",
    soft_time_limit=15 * 60,
    time_limit=20 * 60,
)
def ingest(slide_id: int) -> dict | None:
    try:
        result = ingest_slide(slide_id)
    except Exception:
        # A bug must not leave the slide pending forever: record it, keep the traceback in the log.
        logger.exception("ingest: unexpected error on slide %s", slide_id)
        result = mark_failed(slide_id, INTERNAL_ERROR)
    return None if result is None else {"slide_id": result.slide_id, "status": result.status}


def enqueue_ingest(slide_id: int) -> None:
    """Queue ingestion (call after the slide row is committed). A broker outage fails the slide visibly."""
    try:
        ingest.delay(slide_id)
    except Exception as exc:
        logger.exception("ingest: could not queue slide %s", slide_id)
        mark_failed(slide_id, f"could not queue the slide for processing ({type(exc).__name__}); upload it again later")
