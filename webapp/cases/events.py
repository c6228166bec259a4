"""Live worklist: case changes pushed to the worklist websockets of the case's department, after commit.

Groups: one per department (`worklist.department.<id>`) for its members, and `worklist.all` for admins.
Each message is `{"event": "case.assigned", "case": {...the case as GET /api/cases/<id>/ shows it...}}`.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

ALL_DEPARTMENTS_GROUP = "worklist.all"
EVENTS = ["case.created", "case.updated", "case.assigned", "case.status_changed", "case.priority_changed",
          "case.triage_scored"]


def department_group(department_id: int) -> str:
    return f"worklist.department.{department_id}"


def announce(case, event: str) -> None:
    """Queue `event` for the case's worklist; sent only if (and once) the current transaction commits."""
    from webapp.cases.serializers import CaseSerializer

    # Serialised now, inside the transaction, so the message shows this change and not a later one.
    message = {"type": "worklist.event", "event": event, "case": dict(CaseSerializer(case).data)}
    department_id = case.department_id
    transaction.on_commit(lambda: _send(department_id, message), robust=True)


def _send(department_id: int, message: dict) -> None:
    layer = get_channel_layer()
    for group in (department_group(department_id), ALL_DEPARTMENTS_GROUP):
        async_to_sync(layer.group_send)(group, message)
