"""Case REST endpoints: the worklist, case detail and edits, assignment, status, addenda, turnaround.

Role rules live in webapp/accounts/permissions.py and are applied by webapp/cases/services.py; these
views look up (department-filtered: anything invisible is a 404), call one service, and respond.
"""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.cases import services
from webapp.cases.filters import FILTER_PARAMETERS, ORDERINGS, filter_cases, order_cases, parse_id, parse_moment
from webapp.cases.models import Case, CaseStatus
from webapp.cases.serializers import AssignSerializer, CaseAddendumSerializer, CaseSerializer, StatusSerializer
from webapp.cases.stats import turnaround_by_priority

_FILTERS = [OpenApiParameter(name, str, description=text) for name, text in FILTER_PARAMETERS.items()]
_ORDERING = OpenApiParameter(
    "ordering", str, enum=list(ORDERINGS),
    description="worklist (default: stat → urgent → routine, then due time, then received time), or AI score.",
)


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
        return Case.objects.visible_to(self.request.user).select_related("assignee")

    @extend_schema(parameters=[*_FILTERS, _ORDERING])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def filter_queryset(self, queryset):
        if self.action == "list":
            return order_cases(filter_cases(queryset, self.request.query_params, self.request.user),
                               self.request.query_params)
        return queryset

    def retrieve(self, request, *args, **kwargs):
        case = self.get_object()
        services.record_view(request.user, case)
        return Response(self.get_serializer(case).data)

    def perform_create(self, serializer: CaseSerializer) -> None:
        serializer.instance = services.create_case(self.request.user, serializer.validated_data)

    def perform_update(self, serializer: CaseSerializer) -> None:
        case = services.edit_case(self.request.user, serializer.instance, serializer.validated_data)
        serializer.instance = Case.objects.select_related("assignee").get(pk=case.pk)

    @extend_schema(parameters=_FILTERS, responses={200: dict})
    @action(detail=False)
    def counts(self, request):
        """Cases per status for the worklist tabs, under the same filters as the list (status aside)."""
        cases = filter_cases(self.get_queryset(), request.query_params, request.user, skip=("status",))
        per_status = dict(cases.order_by().values_list("status").annotate(n=Count("id")))
        counts = {value: per_status.get(value, 0) for value in CaseStatus.values}
        return Response({**counts, "total": sum(counts.values())})

    @extend_schema(request=AssignSerializer, responses={200: CaseSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Assign the case: `{"assignee": <user id> | "me" | null}`."""
        case = self.get_object()
        form = AssignSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        case = services.assign(request.user, case, form.validated_data["assignee"])
        return self._case(case)

    @extend_schema(request=StatusSerializer, responses={200: CaseSerializer})
    @action(detail=True, methods=["post"], url_path="status")
    def change_status(self, request, pk=None):
        """Move the case: received → in_review → signed_out (or in_review → received)."""
        case = self.get_object()
        form = StatusSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        case = services.change_status(request.user, case, form.validated_data["status"])
        return self._case(case)

    @extend_schema(request=CaseAddendumSerializer, responses={200: CaseAddendumSerializer(many=True),
                                                              201: CaseAddendumSerializer})
    @action(detail=True, methods=["get", "post"])
    def addenda(self, request, pk=None):
        """A signed-out case's addenda, oldest first; POST `{"text": …}` adds one."""
        case = self.get_object()
        if request.method == "GET":
            addenda = case.addenda.select_related("author")
            return Response(CaseAddendumSerializer(addenda, many=True).data)
        form = CaseAddendumSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        addendum = services.add_addendum(request.user, case, form.validated_data["text"])
        return Response(CaseAddendumSerializer(addendum).data, status=status.HTTP_201_CREATED)

    def _case(self, case: Case) -> Response:
        return Response(CaseSerializer(Case.objects.select_related("assignee").get(pk=case.pk)).data)


class TurnaroundStats(APIView):
    """Received → signed-out hours per priority over the user's departments (all, for admins)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("department", int, description="Only this department."),
            OpenApiParameter("since", str, description="Cases signed out at or after this ISO date/time."),
            OpenApiParameter("until", str, description="Cases signed out before this ISO date/time."),
        ],
        responses={200: dict},
    )
    def get(self, request):
        cases = Case.objects.visible_to(request.user)
        params = request.query_params
        if params.get("department"):
            cases = cases.filter(department_id=parse_id("department", params["department"]))
        if params.get("since"):
            cases = cases.filter(signed_out_at__gte=parse_moment("since", params["since"]))
        if params.get("until"):
            cases = cases.filter(signed_out_at__lt=parse_moment("until", params["until"]))
        return Response({"unit": "hours", "by_priority": turnaround_by_priority(cases)})
