from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from webapp.analysis.models import AnalysisJob
from webapp.analysis.services import DEMO_NOTICE


class AnalysisRequestSerializer(serializers.Serializer):
    """`POST /api/analyses/`: a question about a slide; `region` is a level-0 box [x, y, w, h]."""

    slide = serializers.IntegerField()
    task = serializers.CharField(max_length=64)
    prompt = serializers.CharField(trim_whitespace=True)
    region = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4, required=False,
                                   allow_null=True)
    max_new_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)

    def validate_max_new_tokens(self, value: int | None) -> int | None:
        if value is not None and value > settings.ANALYSIS_MAX_NEW_TOKENS:
            raise serializers.ValidationError(f"at most {settings.ANALYSIS_MAX_NEW_TOKENS}")
        return value


class AnalysisJobSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_id", read_only=True)
    requester_name = serializers.SerializerMethodField()
    cancel_requested = serializers.SerializerMethodField()
    notice = serializers.SerializerMethodField()
    stream_url = serializers.SerializerMethodField()

    class Meta:
        model = AnalysisJob
        fields = [
            "id", "slide", "case", "requester", "requester_name", "task", "prompt", "region", "max_new_tokens",
            "backend", "model", "demo_weights", "notice", "priority", "status", "phase", "progress", "text",
            "regions", "timings", "result", "annotation_ids", "error", "attempt", "cancel_requested", "created_at",
            "started_at", "finished_at", "stream_url",
        ]
        read_only_fields = fields

    def get_requester_name(self, job: AnalysisJob) -> str | None:
        if job.requester is None:
            return None
        return job.requester.get_full_name() or job.requester.get_username()

    def get_cancel_requested(self, job: AnalysisJob) -> bool:
        return job.cancel_requested_at is not None

    def get_notice(self, job: AnalysisJob) -> str | None:
        return DEMO_NOTICE if job.demo_weights else None

    def get_stream_url(self, job: AnalysisJob) -> str:
        return f"/ws/analyses/{job.pk}/"
