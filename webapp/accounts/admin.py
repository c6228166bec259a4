from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from webapp.accounts.models import Department, User


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "created_at"]
    search_fields = ["name", "code"]


@admin.register(User)
class PathDeskUserAdmin(UserAdmin):
    fieldsets = [*UserAdmin.fieldsets, ("Departments", {"fields": ["departments"]})]
    filter_horizontal = [*UserAdmin.filter_horizontal, "departments"]
