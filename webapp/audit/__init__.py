"""Append-only audit trail: who did what, when, to which object, before → after.

Other apps call `record(...)` inside the transaction that makes the change, so a change and its
audit row commit (or roll back) together. Rows are never updated or deleted (see models.py).
"""

from __future__ import annotations

from typing import Any


def record(
    actor,
    action: str,
    obj,
    *,
    case=None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
):
    """Append one audit event and return it.

    `actor` is the user who acted, or None for the system (e.g. an analysis job); `action` a dotted
    name such as "case.assigned"; `obj` the model instance acted on; `case` the case it belongs to
    (defaults to `obj` itself when it is a case); `before`/`after` the changed fields' old and new
    values (JSON-serialisable; datetimes are fine).
    """
    from webapp.audit.models import AuditEvent

    if case is None and obj._meta.label == "cases.Case":
        case = obj
    department_id = getattr(case, "department_id", None) or getattr(obj, "department_id", None)
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_username=actor.get_username() if actor is not None and actor.is_authenticated else "",
        action=action,
        object_type=obj._meta.model_name,
        object_id=obj.pk,
        case_id=case.pk if case is not None else None,
        department_id=department_id,
        before=before or {},
        after=after or {},
    )
