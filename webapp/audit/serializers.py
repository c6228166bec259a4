from __future__ import annotations

from rest_framework import serializers

from webapp.audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.IntegerField(source="actor_id", read_only=True, allow_null=True)
    case = serializers.IntegerField(source="case_id", read_only=True, allow_null=True)
    department = serializers.IntegerField(source="department_id", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "actor_username", "action", "object_type", "object_id", "case",
                  "department", "before", "after"]
        read_only_fields = fields
