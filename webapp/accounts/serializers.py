from __future__ import annotations

from rest_framework import serializers

from webapp.accounts.models import Department, User


class DepartmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "name", "code"]


class MeSerializer(serializers.ModelSerializer):
    role = serializers.CharField(read_only=True)
    is_admin = serializers.BooleanField(read_only=True)
    departments = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name", "role", "is_admin", "departments"]

    def get_departments(self, user: User) -> list[dict]:
        return DepartmentSerializer(user.visible_departments(), many=True).data


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
