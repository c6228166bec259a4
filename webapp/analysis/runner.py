"""What a GPU worker does with one job: `run_job(job_id, worker)`, a plain function returning a `RunOutcome`.

1. Take the job's lease (streaming.py); a live lease elsewhere means another worker runs it: `busy`.
2. Start an attempt (services.start_attempt). A second attempt (the first worker died) first logs
   `restart`, so watchers drop the text they have; the stored text is only ever the last attempt's.
3. Run the model from the process-wide backend (loaded once, kept warm), streaming pieces as they come.
   A watcher thread renews the lease and polls the cancel flag several times a second: a cancel stops
   generation between two tokens.
4. Store the result (fenced by attempt), then log `status` + `done` (or `error`).

Errors a person can act on (bad slide, missing model, time limit) fail the job with that reason; anything
else fails it with a generic reason and a logged traceback. A worker that lost its lease writes nothing more.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from webapp.analysis import services, streaming
from webapp.analysis.catalog import configured_model
from webapp.analysis.models import JobStatus, Phase

logger = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error while analysing the slide; the administrators have the details"
_PHASES = {"coarse": Phase.EXTRACTING, "fine": Phase.SELECTING}


@dataclass(frozen=True)
class RunOutcome:
    """`status`: succeeded / failed / cancelled; or skipped (missing or finished job), busy (another
    worker holds its lease: try again later), lost (another worker took over mid-run)."""

    job_id: int
    status: str
    detail: str = ""


# -- the model, once per process ---------------------------------------------------------------------------

_backend = None
_backend_key: tuple | None = None
_backend_lock = threading.Lock()


def loaded_backend():
    """The configured backend, loaded on first use and kept for the life of the process.

    A load failure is not remembered: the next job tries again (the weights may have been fixed).
    """
    global _backend, _backend_key
    from inference.backends import load_backend

    key = (settings.OMNIPATH_BACKEND, str(settings.OMNIPATH_MODEL), settings.OMNIPATH_DEVICE or None)
    with _backend_lock:
        if _backend is None or _backend_key != key:
            started = time.perf_counter()
            _backend = load_backend(key[0], key[1], device=key[2])
            _backend_key = key
            logger.info("loaded %s (%s) in %.1f s", _backend.model_id, key[0], time.perf_counter() - started)
        return _backend


def preload_backend() -> None:
    """Load the backend now (worker start-up); a failure is logged and retried by the first job."""
    if not configured_model().available:
        logger.warning("no model to preload: %s", configured_model().problem)
        return
    try:
        loaded_backend()
    except Exception:  # noqa: BLE001  (the first job reports the reason on the job itself)
        logger.exception("could not preload the model")
        return
    # The model, tokenizer and Django stay for the process's life: keep full collections from walking them
    # (a long one pauses the token sender; see webapp/asgi.py).
    gc.freeze()


# -- one job -----------------------------------------------------------------------------------------------

class _Watch(threading.Thread):
    """Renews the lease and polls the cancel flag; stops the model's stream on cancel or lost lease."""

    def __init__(self, job_id: int, owner: str) -> None:
        super().__init__(daemon=True, name=f"analysis-{job_id}-watch")
        self.job_id, self.owner = job_id, owner
        self.period = min(0.2, settings.ANALYSIS_LEASE_SECONDS / 4)
        self.cancelled, self.lost, self._stop = threading.Event(), threading.Event(), threading.Event()
        self._stream = None
        self.stream_name: str | None = None  # known once the attempt started: then the cancel flag is polled

    def attach(self, stream) -> None:
        self._stream = stream
        if self.cancelled.is_set() or self.lost.is_set():
            stream.cancel()

    def run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                held, cancel = streaming.renew_lease(self.job_id, self.owner, self.stream_name)
            except Exception:  # noqa: BLE001  (a Redis blip: the lease outlives a few missed renewals)
                logger.warning("analysis %s: could not renew the lease", self.job_id, exc_info=True)
                continue
            if cancel:
                self.cancelled.set()
            if not held:
                self.lost.set()
            if (cancel or not held) and self._stream is not None:
                self._stream.cancel()

    def stop(self) -> None:
        self._stop.set()


class _Progress:
    """The model's progress callback: phase changes go to the log and the row, the rest throttled."""

    def __init__(self, job_id: int, attempt: int, out: streaming.JobStream) -> None:
        self.job_id, self.attempt, self.out = job_id, attempt, out
        self.phase = Phase.QUEUED
        self.sent_at = self.saved_at = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.update(_PHASES.get(stage, Phase.EXTRACTING), done / total if total else 1.0)

    def update(self, phase: str, fraction: float) -> None:
        now = time.monotonic()
        changed = phase != self.phase
        self.phase = phase
        if changed or now - self.sent_at >= 0.5:
            self.sent_at = now
            self.out.send({"type": "status", "status": JobStatus.RUNNING, "phase": phase,
                           "progress": round(fraction, 3)})
        if changed or now - self.saved_at >= 2.0:
            self.saved_at = now
            services.set_phase(self.job_id, self.attempt, phase, fraction)


def run_job(job_id: int, worker: str, *, wait_for_lease: float = 0.0) -> RunOutcome:
    """Run job `job_id` on this process's model, streaming it; `worker` names this worker (its hostname).

    wait_for_lease: seconds to wait for another run's lease to expire (a run that just died) before
    answering `busy`.
    """
    owner = f"{worker}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait_for_lease
    while not streaming.acquire_lease(job_id, owner):
        if time.monotonic() >= deadline:
            return RunOutcome(job_id, "busy", "another worker holds the job's lease")
        time.sleep(0.1)
    watch = _Watch(job_id, owner)
    watch.start()
    try:
        start = services.start_attempt(job_id, worker)
        if start.job is None:
            return RunOutcome(job_id, "skipped", start.why)
        watch.stream_name = start.job.stream_name
        logger.info("analysis %s: attempt %s started by %s", job_id, start.attempt, owner)
        return _run(start, owner, watch)
    finally:
        watch.stop()
        streaming.release_lease(job_id, owner)


def _run(start: services.Start, owner: str, watch: _Watch) -> RunOutcome:
    from inference.errors import InferenceError
    from slides import SlideError

    job, attempt = start.job, start.attempt
    out = streaming.JobStream(job.pk, job.stream_name, owner)
    if start.restart:
        logger.info("analysis %s: attempt %s restarts the text", job.pk, attempt)
        out.send({"type": "restart"})
    out.send(job.status_message())
    result: dict | None = None
    error = ""
    try:
        model = configured_model()
        if not model.available:
            raise InferenceError(model.problem)
        if job.cancel_requested_at is None:
            from inference.analysis import AnalysisRequest

            backend = loaded_backend()
            request = AnalysisRequest(
                start.slide_path, job.prompt, job.task, roi=tuple(job.region) if job.region else None,
                max_new_tokens=job.max_new_tokens, slide_sha256=job.slide.sha256)
            progress = _Progress(job.pk, attempt, out)
            stream = backend.analyze(request, progress=progress)
            watch.attach(stream)
            for piece in stream:
                if progress.phase != Phase.GENERATING:
                    progress.update(Phase.GENERATING, 0.0)
                out.token(piece)
            result = stream.result.to_dict()
    except (InferenceError, SlideError) as exc:
        # A cancel during feature extraction ends it with `Cancelled` (an InferenceError): not a failure.
        if not (watch.cancelled.is_set() or watch.lost.is_set()):
            error = str(exc)
    except SoftTimeLimitExceeded:
        error = (f"the analysis took longer than {settings.ANALYSIS_SOFT_TIME_LIMIT} s and was stopped; "
                 "ask about a smaller region")
    except Exception:
        logger.exception("analysis %s: unexpected error", job.pk)
        error = INTERNAL_ERROR
    if watch.lost.is_set() or out.lost:
        out.close()
        return RunOutcome(job.pk, "lost", "another worker took over the job")
    if error:
        finished = services.fail_job(job.pk, error, attempt=attempt)
    else:
        cancelled = watch.cancelled.is_set() or job.cancel_requested_at is not None
        finished = services.finish_job(job.pk, attempt, result=result or {"text": "", "model": job.model_id},
                                       cancelled=cancelled)
    if finished is None:
        out.close()
        return RunOutcome(job.pk, "lost", "the job changed under this attempt")
    out.send(finished.status_message())
    out.send(finished.final_message())
    if not out.close():
        logger.error("analysis %s: the stream did not drain", job.pk)
    if out.failed is not None:
        logger.error("analysis %s: some messages could not be streamed: %s", job.pk, out.failed)
    return RunOutcome(job.pk, finished.status, finished.error)
