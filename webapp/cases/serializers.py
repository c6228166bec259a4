from __future__ import annotations

from rest_framework import serializers

from webapp.accounts.models import Department, User
from webapp.cases.models import Case


class CaseSerializer(serializers.ModelSerializer):
    department = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all(), required=False)
    assignee = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False, allow_null=True)

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
            "department",
            "received_at",
            "due_at",
            "updated_at",
        ]
        read_only_fields = ["id", "updated_at"]
        # Uniqueness per department is checked in validate(): the department may be implicit.
        validators: list = []

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

        assignee = attrs.get("assignee")
        if assignee is not None and not (assignee.is_admin or assignee.departments.filter(pk=department.pk).exists()):
            raise serializers.ValidationError({"assignee": "the assignee is not a member of the case's department"})
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
