"""Departments, users and roles.

A user belongs to one or more departments and sees only their data; roles are Django groups.
Admins (superusers or members of the `admin` group) see every department.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, Group
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    PATHOLOGIST = "pathologist", "Pathologist"
    RESIDENT = "resident", "Resident"
    TECHNICIAN = "technician", "Technician"


# Highest first: a user in several role groups is shown with the most senior one.
ROLE_ORDER = [Role.ADMIN, Role.PATHOLOGIST, Role.RESIDENT, Role.TECHNICIAN]


class DepartmentScopedQuerySet(models.QuerySet):
    """Rows of the user's departments (every department for admins); subclasses name the path to it."""

    department_id_field = "department_id"

    def visible_to(self, user):
        if not user.is_authenticated:
            return self.none()
        if user.is_admin:
            return self
        # The ids as literals (one small query) let the planner use per-department indexes.
        return self.filter(**{f"{self.department_id_field}__in": user.visible_department_ids()})


class Department(models.Model):
    name = models.CharField(max_length=200, unique=True)
    code = models.SlugField(max_length=40, unique=True, help_text="Short code, e.g. 'histo-north'.")
    # The analysis task whose latest finished result sets a case's AI triage score (webapp/cases/services.py).
    triage_task = models.CharField(max_length=64, default="cancer_detection")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    departments = models.ManyToManyField(Department, related_name="members", blank=True)

    @property
    def is_admin(self) -> bool:
        return self.is_superuser or self.has_role(Role.ADMIN)

    def has_role(self, role: str) -> bool:
        return role in self.role_names

    @property
    def role_names(self) -> set[str]:
        cached = getattr(self, "_role_names", None)
        if cached is None:
            cached = set(self.groups.values_list("name", flat=True))
            self._role_names = cached
        return cached

    @property
    def role(self) -> str | None:
        if self.is_superuser:
            return Role.ADMIN.value
        for role in ROLE_ORDER:
            if role.value in self.role_names:
                return role.value
        return None

    def set_role(self, role: str) -> None:
        """Make `role` this user's only role group."""
        if role not in Role.values:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
        self.groups.remove(*self.groups.filter(name__in=Role.values))
        self.groups.add(role_group(role))
        self._role_names = None

    def visible_departments(self) -> models.QuerySet[Department]:
        if self.is_admin:
            return Department.objects.all()
        return self.departments.all()

    def visible_department_ids(self) -> list[int]:
        return list(self.visible_departments().values_list("id", flat=True))


def role_group(role: str) -> Group:
    # Groups are created on first use, so they exist in any database state (tests flush tables).
    group, _ = Group.objects.get_or_create(name=role)
    return group
