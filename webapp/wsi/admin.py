from django.contrib import admin

from webapp.wsi.models import Slide


@admin.register(Slide)
class SlideAdmin(admin.ModelAdmin):
    list_display = ["id", "original_filename", "case", "status", "size", "created_at"]
    list_filter = ["status"]
    search_fields = ["original_filename", "sha256", "case__accession_number"]
    readonly_fields = ["sha256", "size", "stored_path", "metadata", "failure_reason", "ingested_at"]
