from __future__ import annotations

from rest_framework import mixins, viewsets

from webapp.cases.models import Case
from webapp.cases.serializers import CaseSerializer


class CaseViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Cases of the user's departments (all departments for admins)."""

    serializer_class = CaseSerializer

    def get_queryset(self):
        return Case.objects.visible_to(self.request.user).select_related("department")

    def perform_create(self, serializer: CaseSerializer) -> None:
        serializer.save(created_by=self.request.user)
