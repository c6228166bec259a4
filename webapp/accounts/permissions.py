"""What each role may do. One place for the rules; views and consumers call these.

Department isolation (who may *see* an object) is separate: querysets are filtered with
`visible_to(user)` and anything outside is a 404. These functions answer what a user who can see
an object may *do* with it.

| action                               | technician | resident | pathologist | admin |
|--------------------------------------|------------|----------|-------------|-------|
| create/edit case metadata, upload    | yes        | yes      | yes         | yes   |
| annotate (diagnostic annotations)    | no         | yes      | yes         | yes   |
| assign a case to themselves          | no         | no       | yes         | yes   |
| sign out a case                      | no         | no       | assignee    | yes   |
| manage users, departments, labels    | no         | no       | no          | yes   |
"""

from __future__ import annotations

from webapp.accounts.models import Role


def _role(user) -> str | None:
    return user.role if user.is_authenticated else None


def can_edit_case_metadata(user) -> bool:
    return _role(user) is not None


def can_upload_slides(user) -> bool:
    return _role(user) is not None


def can_annotate(user) -> bool:
    return _role(user) in {Role.ADMIN, Role.PATHOLOGIST, Role.RESIDENT}


def can_assign_self(user) -> bool:
    return _role(user) in {Role.ADMIN, Role.PATHOLOGIST}


def can_sign_out(user, case) -> bool:
    role = _role(user)
    return role == Role.ADMIN or (role == Role.PATHOLOGIST and case.assignee_id == user.pk)


def can_manage(user) -> bool:
    """Users, departments and label sets."""
    return _role(user) == Role.ADMIN
