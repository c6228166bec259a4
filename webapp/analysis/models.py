"""Analysis jobs: one question about one slide, answered by a model on a GPU worker.

Lifecycle: `queued → running → succeeded | failed | cancelled`. A job re-run after its worker died stays
`running` (its `attempt` grows); the text stored is the last attempt's only. Coordinates are level-0
pixels (`region` and each selected region: `[x, y, w, h]`).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from webapp.accounts.models import DepartmentScopedQuerySet
from webapp.cases.models import Priority


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Phase(models.TextChoices):
    QUEUED = "queued", "Queued"
    EXTRACTING = "extracting", "Extracting features"
    SELECTING = "selecting", "Selecting regions"
    GENERATING = "generating", "Generating"
    DONE = "done", "Done"


# Case priority → Redis broker priority (0 is served first; kombu's default steps are 0, 3, 6, 9).
BROKER_PRIORITY = {Priority.STAT: 0, Priority.URGENT: 3, Priority.ROUTINE: 6}


def new_stream_key() -> str:
    return uuid.uuid4().hex


class AnalysisJobQuerySet(DepartmentScopedQuerySet):
    department_id_field = "case__department_id"


class AnalysisJob(models.Model):
    slide = models.ForeignKey("wsi.Slide", on_delete=models.CASCADE, related_name="analyses")
    # The slide's case, kept on the job for the visibility filter and the audit trail.
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="analyses")
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    task = models.CharField(max_length=64)
    prompt = models.TextField()
    # Optional level-0 box [x, y, w, h]: only tissue meeting it is looked at.
    region = models.JSONField(null=True, blank=True)
    max_new_tokens = models.PositiveIntegerField(null=True, blank=True)
    backend = models.CharField(max_length=32)
    # Set by the worker from the checkpoint it loaded (e.g. "omnipath:omnipath-tiny@1a2b3c4d5e6f").
    model_id = models.CharField(max_length=200, blank=True)
    demo_weights = models.BooleanField(default=False, help_text="Answered by tiny random (untrained) weights.")
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.ROUTINE)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.QUEUED)
    progress = models.FloatField(default=0.0, help_text="Fraction [0, 1] of the current phase.")
    text = models.TextField(blank=True)
    # [{"box": [x, y, w, h], "score": float, "magnification": float}], level-0 px.
    regions = models.JSONField(default=list, blank=True)
    # Seconds: features, prefill, first_token, total; tokens_per_s; queued (created → last start).
    timings = models.JSONField(default=dict, blank=True)
    # The rest of the model's result: task_scores, visual_tokens, tiles_encoded, tiles_cached (fine tiles
    # taken from the cache), notes, generated_tokens.
    result = models.JSONField(default=dict, blank=True)
    annotation_ids = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0, help_text="Runs started; > 1 after a worker was lost.")
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Names the job's Redis keys (replay log, cancel flag) with the id: a database recreated or restored
    # while Redis keeps old keys (ids used again) never replays another job's messages.
    stream_key = models.CharField(max_length=32, default=new_stream_key, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = AnalysisJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["slide", "created_at"], name="analysis_slide_idx"),
            models.Index(fields=["requester", "created_at"], name="analysis_requester_idx"),
        ]

    def __str__(self) -> str:
        return f"analysis {self.pk} ({self.task}, slide {self.slide_id})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def stream_name(self) -> str:
        return f"{self.pk}:{self.stream_key}"

    @property
    def broker_priority(self) -> int:
        return BROKER_PRIORITY.get(self.priority, BROKER_PRIORITY[Priority.ROUTINE])

    def status_message(self) -> dict:
        """The websocket `status` message for the job's current state."""
        return {"type": "status", "status": self.status, "phase": self.phase, "progress": round(self.progress, 3)}

    def final_message(self) -> dict:
        """The websocket message that ends a finished job's stream: `done` (text) or `error`."""
        if self.status == JobStatus.FAILED:
            return {"type": "error", "error": self.error}
        return {"type": "done", "status": self.status, "text": self.text, "regions": self.regions,
                "model": self.model_id, "demo_weights": self.demo_weights}
