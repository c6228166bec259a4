"""Analysis REST endpoints: ask, list, read, cancel. Look up what the user may see (else 404), call a service."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from webapp.analysis import services
from webapp.analysis.catalog import configured_model
from webapp.analysis.models import AnalysisJob
from webapp.analysis.serializers import AnalysisJobSerializer, AnalysisRequestSerializer


@extend_schema(parameters=[OpenApiParameter("slide", int, description="Only the analyses of this slide.")])
class AnalysisViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AnalysisJobSerializer

    def get_queryset(self):
        jobs = AnalysisJob.objects.visible_to(self.request.user).select_related("requester")
        slide = self.request.query_params.get("slide")
        if slide is not None:
            if not slide.isdigit():
                raise ValidationError({"slide": "must be a slide id"})
            jobs = jobs.filter(slide_id=int(slide))
        return jobs

    def get_throttles(self):
        if self.action == "create":
            # Per user, counting every creation request (as uploads do).
            self.throttle_scope = "analyses"
            return [ScopedRateThrottle()]
        return super().get_throttles()

    @extend_schema(request=AnalysisRequestSerializer, responses={201: AnalysisJobSerializer})
    def create(self, request):
        """Ask the model about a slide; the answer streams on `stream_url` (a websocket)."""
        form = AnalysisRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        job = services.create_job(request.user, slide_id=data["slide"], task=data["task"], prompt=data["prompt"],
                                  region=data.get("region"), max_new_tokens=data.get("max_new_tokens"))
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: AnalysisJobSerializer, 202: AnalysisJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued job at once (200); a running one stops within a second (202, then `cancelled`)."""
        job = services.cancel_job(request.user, self.get_object())
        done = job.is_finished
        return Response(self.get_serializer(job).data, status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)


class ModelInfoView(APIView):
    """The configured model: backend, name, tasks it answers, whether it is demo (untrained) weights, and the
    request limits (prompt length, tokens a request may ask for) so a client can say them before asking."""

    def get(self, request):
        return Response({**configured_model().to_dict(), "prompt_max_chars": settings.ANALYSIS_PROMPT_MAX_CHARS,
                         "max_new_tokens_limit": settings.ANALYSIS_MAX_NEW_TOKENS})
