"""Celery tasks of the `gpu` queue (routing: CELERY_TASK_ROUTES in settings). Thin: see runner.py.

Delivery guarantees, with the Redis broker:
- `acks_late`: the message is acknowledged only when the task returns, so a job whose worker dies is
  delivered again. A dead pool *child* (OOM killer, SIGKILL) is noticed by its parent at once and, with
  `reject_on_worker_lost`, the message goes straight back to the queue. A dead *worker* (main process or
  node gone) leaves the message unacknowledged; another worker restores it after
  `BROKER_VISIBILITY_TIMEOUT` seconds (swept every `BROKER_RESTORE_INTERVAL`).
- A re-delivered job whose previous run died still has that run's lease for up to `ANALYSIS_LEASE_SECONDS`:
  the task waits for it to expire, then re-runs the job. A lease that stays held means a live worker still
  runs the job (a visibility timeout shorter than the job; keep BROKER_VISIBILITY_TIMEOUT above
  ANALYSIS_TIME_LIMIT): the task checks again later (a retry) instead of running the job twice. Only that
  case uses a countdown, whose ETA message lets the holding worker prefetch one more job.
- Priority: the message carries the case's broker priority (stat 0 → routine 6; 0 is served first). With
  one job per GPU process and a prefetch of one, a worker takes its next message only when it is free, so
  a stat job overtakes routine jobs already waiting.
- Soft time limit: the job fails with a reason. Hard limit: the child is killed; `on_failure` (in the
  worker's main process) fails the job; the message is acknowledged, not re-run.
"""

from __future__ import annotations

import logging
import threading

from billiard.exceptions import WorkerLostError
from celery import Task, shared_task
from celery.exceptions import TimeLimitExceeded
from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings

from webapp.analysis import services
from webapp.analysis.checks import visibility_timeout_problem
from webapp.analysis.runner import INTERNAL_ERROR, preload_backend, run_job

logger = logging.getLogger(__name__)


class AnalysisTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # The run function handles the job's own errors; this is the hard time limit, or the worker's
        # database/broker failing around it. Not a lost worker: that message is requeued and re-run.
        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is None or isinstance(exc, WorkerLostError):
            return
        if isinstance(exc, TimeLimitExceeded):
            reason = (f"the analysis took longer than {settings.ANALYSIS_TIME_LIMIT} s and its worker process "
                      "was stopped; ask about a smaller region")
        else:
            reason = INTERNAL_ERROR
        try:
            job = services.fail_job(int(job_id), reason)
            if job is not None:
                from webapp.analysis import streaming

                streaming.append(job.pk, job.stream_name, [job.status_message(), job.final_message()])
        except Exception:  # noqa: BLE001  (the original failure is logged by Celery; this one too)
            logger.exception("analysis %s: could not record the failure", job_id)


@shared_task(
    bind=True,
    base=AnalysisTask,
    name="webapp.analysis.tasks.analyze",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.ANALYSIS_SOFT_TIME_LIMIT,
    time_limit=settings.ANALYSIS_TIME_LIMIT,
    max_retries=None,
)
def analyze(self, job_id: int) -> dict:
    outcome = run_job(job_id, self.request.hostname or "worker", wait_for_lease=settings.ANALYSIS_LEASE_SECONDS + 1)
    if outcome.status == "busy":
        priority = (self.request.delivery_info or {}).get("priority")
        raise self.retry(countdown=settings.ANALYSIS_LEASE_SECONDS, priority=priority)
    logger.info("analysis %s: %s %s", job_id, outcome.status, outcome.detail)
    return {"job_id": job_id, "status": outcome.status}


# Keep the model warm: a worker consuming `gpu` loads it in each pool process as soon as the process starts
# (on a thread, so the pool's start-up handshake is not held up), not when the first job arrives. The main
# process never imports torch, so CUDA is initialised only in the forked pool process.
_consumes_gpu = False


@celeryd_after_setup.connect
def _note_gpu_worker(sender, instance, **kwargs) -> None:
    global _consumes_gpu
    _consumes_gpu = "gpu" in instance.app.amqp.queues.consume_from
    if _consumes_gpu and (problem := visibility_timeout_problem()):
        logger.warning("%s", problem)


@worker_process_init.connect
def _preload_model(**kwargs) -> None:
    if _consumes_gpu:
        threading.Thread(target=preload_backend, daemon=True, name="analysis-preload").start()
