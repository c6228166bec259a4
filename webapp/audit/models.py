"""The audit event row. Append-only: refused by the ORM here and by a database trigger (migration 0001)."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditImmutable(Exception):
    """Raised on any attempt to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs):
        raise AuditImmutable("the audit trail is append-only: events cannot be updated")

    def delete(self):
        raise AuditImmutable("the audit trail is append-only: events cannot be deleted")

    def _raw_delete(self, using):
        raise AuditImmutable("the audit trail is append-only: events cannot be deleted")


class AuditEvent(models.Model):
    at = models.DateTimeField(default=timezone.now)
    # No database-level foreign keys: deleting a user, case or department never touches the trail.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # Kept beside the id so the trail still reads after a user is renamed or removed; "" = the system.
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, help_text='Dotted name, e.g. "case.assigned".')
    object_type = models.CharField(max_length=64, help_text='Model name of the object, e.g. "case", "slide".')
    object_id = models.BigIntegerField()
    case = models.ForeignKey(
        "cases.Case", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    department = models.ForeignKey(
        "accounts.Department", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # The changed fields only: {"priority": "routine"} → {"priority": "stat"}.
    before = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    after = models.JSONField(default=dict, encoder=DjangoJSONEncoder)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["case", "id"], name="audit_case_idx"),
            models.Index(fields=["object_type", "object_id", "id"], name="audit_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or 'system'} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditImmutable("the audit trail is append-only: events cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutable("the audit trail is append-only: events cannot be deleted")
