from django.contrib import admin

from webapp.analysis.models import AnalysisJob


@admin.register(AnalysisJob)
class AnalysisJobAdmin(admin.ModelAdmin):
    """Read-only: jobs change through the API and the GPU workers."""

    list_display = ["id", "slide", "task", "status", "phase", "requester", "model_id", "attempt", "created_at"]
    list_filter = ["status", "task", "demo_weights"]
    raw_id_fields = ["slide", "case", "requester"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
