"""Slides: an uploaded whole-slide image file belonging to a case."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.accounts.models import DepartmentScopedQuerySet


class SlideStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class SlideQuerySet(DepartmentScopedQuerySet):
    department_id_field = "case__department_id"


class Slide(models.Model):
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="slides")
    # The client's file name is kept as text for people to read; it is never part of a path.
    original_filename = models.CharField(max_length=255, blank=True)
    # Path relative to MEDIA_ROOT of the content-addressed file (see webapp/wsi/storage.py).
    stored_path = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField(help_text="File size in bytes.")
    stain = models.CharField(max_length=64, blank=True, default="H&E")
    status = models.CharField(max_length=16, choices=SlideStatus.choices, default=SlideStatus.PENDING)
    failure_reason = models.TextField(blank=True)
    # Normalised metadata from slides.SlideMetadata.to_dict() (format, width, height, levels, mpp, ...).
    metadata = models.JSONField(default=dict, blank=True)
    tissue_fraction = models.FloatField(null=True, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    objects = SlideQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"slide {self.pk} ({self.original_filename or self.sha256[:12]})"

    @property
    def is_ready(self) -> bool:
        return self.status == SlideStatus.READY
