from django.contrib import admin

from webapp.annotations.models import Annotation, AnnotationHistory, Label


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "color", "department", "created_at"]
    list_filter = ["department"]
    search_fields = ["name"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "slide", "object_type", "label", "author", "version", "updated_at", "deleted_at"]
    list_filter = ["object_type", "deleted_at"]
    raw_id_fields = ["slide", "label", "author", "deleted_by"]

    # Changes go through the API, which keeps versions, bounding boxes and history; here one only reads.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AnnotationHistory)
class AnnotationHistoryAdmin(admin.ModelAdmin):
    """Read-only: history rows are never changed or removed."""

    list_display = ["annotation", "version", "action", "actor", "at"]
    list_filter = ["action"]
    raw_id_fields = ["annotation", "actor"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
