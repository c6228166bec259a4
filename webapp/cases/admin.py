from django.contrib import admin

from webapp.cases.models import Case, CaseAddendum


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["accession_number", "department", "priority", "status", "assignee", "received_at", "due_at", "triage_score"]
    list_filter = ["department", "priority", "status"]
    search_fields = ["accession_number", "patient_pseudonym"]


@admin.register(CaseAddendum)
class CaseAddendumAdmin(admin.ModelAdmin):
    list_display = ["case", "author", "created_at"]
