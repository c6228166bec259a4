"""Cases: one accession (a specimen from one patient) with its slides."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Case as SqlCase
from django.db.models import F, Value, When
from django.utils import timezone

from webapp.accounts.models import DepartmentScopedQuerySet


class Priority(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    STAT = "stat", "Stat"


class CaseStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    IN_REVIEW = "in_review", "In review"
    SIGNED_OUT = "signed_out", "Signed out"


# stat → urgent → routine, as a stored column so the worklist order is served by an index.
PRIORITY_RANK = SqlCase(
    When(priority=Priority.STAT, then=Value(0)),
    When(priority=Priority.URGENT, then=Value(1)),
    default=Value(2),
    output_field=models.SmallIntegerField(),
)

# The worklist's default order: most urgent first, then the earliest due (no due time last), then oldest.
WORKLIST_ORDER = [F("priority_rank").asc(), F("due_at").asc(nulls_last=True), F("received_at").asc(), F("id").asc()]


class CaseQuerySet(DepartmentScopedQuerySet):
    department_id_field = "department_id"


class Case(models.Model):
    department = models.ForeignKey("accounts.Department", on_delete=models.PROTECT, related_name="cases")
    accession_number = models.CharField(max_length=64)
    patient_pseudonym = models.CharField(max_length=128, blank=True)
    organ = models.CharField(max_length=128, blank=True, help_text="Organ or specimen site.")
    clinical_notes = models.TextField(blank=True, max_length=20_000)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.ROUTINE)
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.RECEIVED)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_cases"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="created_cases"
    )
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    priority_rank = models.GeneratedField(
        expression=PRIORITY_RANK, output_field=models.SmallIntegerField(), db_persist=True
    )
    signed_out_at = models.DateTimeField(null=True, blank=True)
    signed_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # AI triage: the latest finished analysis of the department's triage task (Department.triage_task),
    # a probability in [0, 1]; set only by services.update_triage_score.
    triage_score = models.FloatField(null=True, blank=True)
    triage_scored_at = models.DateTimeField(null=True, blank=True)
    triage_job_id = models.BigIntegerField(null=True, blank=True, help_text="The analysis job that set the score.")

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = WORKLIST_ORDER
        constraints = [
            models.UniqueConstraint(fields=["department", "accession_number"], name="unique_accession_per_department")
        ]
        indexes = [
            models.Index(fields=["department", "status", "priority"]),
            # Serves WORKLIST_ORDER per department: PostgreSQL's ascending indexes keep NULLs last, as
            # the order wants for due_at (an explicit NULLS LAST would not build on SQLite, the demo).
            models.Index(fields=["department", "priority_rank", "due_at", "received_at", "id"],
                         name="case_worklist_idx"),
            models.Index(fields=["department", "triage_score"], name="case_triage_idx"),
            models.Index(fields=["department", "signed_out_at"], name="case_signed_out_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.accession_number} ({self.department})"

    @property
    def is_signed_out(self) -> bool:
        """A signed-out case is read-only: only addenda may be added (see accounts/permissions.py)."""
        return self.status == CaseStatus.SIGNED_OUT


class CaseAddendum(models.Model):
    """Text added to a case after sign-out; never edited or removed."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="addenda")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField(max_length=20_000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"addendum {self.pk} to {self.case_id}"
