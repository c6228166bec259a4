from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers

from webapp.accounts.models import Department, User
from webapp.cases.models import Case, CaseAddendum

# Changed only through their own endpoints, which apply the role rules and record the change.
ACTION_FIELDS = {
    "status": "change the status with POST /api/cases/{id}/status/",
    "assignee": "assign the case with POST /api/cases/{id}/assign/",
}


def _iso(value: datetime | None) -> str | None:
    """DRF's ISO 8601 form in UTC (the project's time zone): `…Z` rather than `…+00:00`."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class CaseSerializer(serializers.ModelSerializer):
    department = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all(), required=False)
    assignee_name = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "accession_number",
            "patient_pseudonym",
            "organ",
            "clinical_notes",
            "priority",
            "status",
            "assignee",
            "assignee_name",
            "department",
            "received_at",
            "due_at",
            "updated_at",
            "signed_out_at",
            "signed_out_by",
            "triage_score",
            "triage_scored_at",
            "triage_job_id",
        ]
        read_only_fields = [
            "id", "status", "assignee", "updated_at", "signed_out_at", "signed_out_by", "triage_score",
            "triage_scored_at", "triage_job_id",
        ]
        # Uniqueness per department is checked in validate(): the department may be implicit.
        validators: list = []

    def get_assignee_name(self, case: Case) -> str | None:
        if case.assignee_id is None:
            return None
        return case.assignee.get_full_name() or case.assignee.get_username()

    def to_representation(self, case: Case) -> dict:
        # The worklist renders a page of these per request; built directly, not field by field
        # (same keys and formats as the declared fields; a test compares them).
        return {
            "id": case.pk,
            "accession_number": case.accession_number,
            "patient_pseudonym": case.patient_pseudonym,
            "organ": case.organ,
            "clinical_notes": case.clinical_notes,
            "priority": case.priority,
            "status": case.status,
            "assignee": case.assignee_id,
            "assignee_name": self.get_assignee_name(case),
            "department": case.department_id,
            "received_at": _iso(case.received_at),
            "due_at": _iso(case.due_at),
            "updated_at": _iso(case.updated_at),
            "signed_out_at": _iso(case.signed_out_at),
            "signed_out_by": case.signed_out_by_id,
            "triage_score": case.triage_score,
            "triage_scored_at": _iso(case.triage_scored_at),
            "triage_job_id": case.triage_job_id,
        }

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            for field, hint in ACTION_FIELDS.items():
                if field in data and data[field] != self._current(field):
                    raise serializers.ValidationError({field: hint})
        return super().to_internal_value(data)

    def _current(self, field: str):
        if self.instance is None:
            return None if field == "assignee" else "received"
        return self.instance.assignee_id if field == "assignee" else self.instance.status

    def validate_accession_number(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("accession number must not be blank")
        return value

    def validate(self, attrs: dict) -> dict:
        user = self.context["request"].user
        department = attrs.get("department") or (self.instance.department if self.instance else None)
        if self.instance is None:
            department = self._department_for_create(user, department)
            attrs["department"] = department
        elif "department" in attrs and attrs["department"] != self.instance.department:
            raise serializers.ValidationError({"department": "a case cannot move to another department"})

        accession = attrs.get("accession_number", self.instance.accession_number if self.instance else None)
        duplicates = Case.objects.filter(department=department, accession_number=accession)
        if self.instance is not None:
            duplicates = duplicates.exclude(pk=self.instance.pk)
        if duplicates.exists():
            raise serializers.ValidationError(
                {"accession_number": f"accession number {accession} already exists in {department.name}"}
            )

        received = attrs.get("received_at", self.instance.received_at if self.instance else None)
        due = attrs.get("due_at", self.instance.due_at if self.instance else None)
        if received and due and due < received:
            raise serializers.ValidationError({"due_at": "due time is before the received time"})
        return attrs

    @staticmethod
    def _department_for_create(user: User, department: Department | None) -> Department:
        visible = user.visible_departments()
        if department is None:
            choices = list(visible[:2])
            if len(choices) != 1:
                raise serializers.ValidationError(
                    {"department": "department is required: you belong to more than one (or none)"}
                )
            return choices[0]
        if not visible.filter(pk=department.pk).exists():
            # Same answer as for a department that does not exist.
            raise serializers.ValidationError({"department": f'Invalid pk "{department.pk}" - object does not exist.'})
        return department


class CaseAddendumSerializer(serializers.ModelSerializer):
    author_name = serializers.SerializerMethodField()

    class Meta:
        model = CaseAddendum
        fields = ["id", "case", "author", "author_name", "text", "created_at"]
        read_only_fields = ["id", "case", "author", "created_at"]

    def get_author_name(self, addendum: CaseAddendum) -> str | None:
        if addendum.author is None:
            return None
        return addendum.author.get_full_name() or addendum.author.get_username()


class AssignSerializer(serializers.Serializer):
    assignee = serializers.JSONField(allow_null=True, help_text='A user id, "me", or null to unassign.')

    def validate_assignee(self, value) -> User | None:
        if value is None:
            return None
        if value == "me":
            return self.context["request"].user
        if isinstance(value, bool) or not isinstance(value, int):
            raise serializers.ValidationError('expected a user id, "me" or null')
        user = User.objects.filter(pk=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"no such user: {value}")
        return user


class StatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Case._meta.get_field("status").choices)
