"""`GET /api/audit/`: the audit trail, for admins only, oldest first."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied, ValidationError

from webapp.accounts.permissions import can_read_audit
from webapp.audit.models import AuditEvent
from webapp.audit.serializers import AuditEventSerializer

_INTEGER_FILTERS = {"case": "case_id", "object_id": "object_id", "actor": "actor_id", "department": "department_id"}
_TEXT_FILTERS = {"object_type": "object_type", "action": "action"}


@extend_schema(
    parameters=[
        OpenApiParameter("case", int, description="Events of this case (its slides and addenda included)."),
        OpenApiParameter("object_type", str, description='e.g. "case", "slide", "caseaddendum".'),
        OpenApiParameter("object_id", int),
        OpenApiParameter("actor", int, description="User id."),
        OpenApiParameter("department", int),
        OpenApiParameter("action", str, description='e.g. "case.assigned".'),
    ]
)
class AuditEventList(generics.ListAPIView):
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        if not can_read_audit(self.request.user):
            raise PermissionDenied("only admins can read the audit trail")
        events = AuditEvent.objects.all()
        params = self.request.query_params
        for name, field in _INTEGER_FILTERS.items():
            value = params.get(name)
            if value is not None:
                if not value.isdigit():
                    raise ValidationError({name: "must be an integer id"})
                events = events.filter(**{field: int(value)})
        for name, field in _TEXT_FILTERS.items():
            if params.get(name):
                events = events.filter(**{field: params[name]})
        return events
