"""Cases: one accession (a specimen from one patient) with its slides."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Priority(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    STAT = "stat", "Stat"


class CaseStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    IN_REVIEW = "in_review", "In review"
    SIGNED_OUT = "signed_out", "Signed out"


class CaseQuerySet(models.QuerySet["Case"]):
    def visible_to(self, user) -> CaseQuerySet:
        if not user.is_authenticated:
            return self.none()
        if user.is_admin:
            return self
        return self.filter(department__members=user)


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

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["department", "accession_number"], name="unique_accession_per_department")
        ]
        indexes = [models.Index(fields=["department", "status", "priority"])]

    def __str__(self) -> str:
        return f"{self.accession_number} ({self.department})"
