"""What each role may do. One place for the rules; views and consumers call these.

Department isolation (who may *see* an object) is separate: querysets are filtered with
`visible_to(user)` and anything outside is a 404. These functions answer what a user who can see
an object may *do* with it.

| action                                           | technician | resident | pathologist | admin |
|--------------------------------------------------|------------|----------|-------------|-------|
| see cases, slides, worklist (own departments)    | yes        | yes      | yes         | all   |
| create/edit case metadata and priority, upload   | yes        | yes      | yes         | yes   |
| annotate (diagnostic annotations)                | no         | yes      | yes         | yes   |
| move a case received <-> in review               | no         | yes      | yes         | yes   |
| assign an unassigned case to themselves, or      | no         | no       | yes         | yes   |
|   release their own assignment                   |            |          |             |       |
| assign or reassign a case to someone else        | no         | no       | no          | yes   |
| sign out a case (from in review)                 | no         | no       | assignee    | yes   |
| add an addendum to a signed-out case             | no         | no       | yes         | yes   |
| turnaround statistics (own departments)          | yes        | yes      | yes         | all   |
| read the audit trail                             | no         | no       | no          | yes   |
| ask OmniPath about a slide (own departments)     | yes        | yes      | yes         | yes   |
| cancel an analysis                               | requester  | requester| yes         | yes   |
| manage users, departments, labels                | no         | no       | no          | yes   |

An assignee must be able to sign out: a pathologist of the case's department, or an admin.
A signed-out case is read-only (metadata, priority, assignment, status, slides); only addenda are added.
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


def can_change_review_state(user) -> bool:
    """Move a case between received and in review (not sign-out; see `can_sign_out`)."""
    return _role(user) in {Role.ADMIN, Role.PATHOLOGIST, Role.RESIDENT}


def can_assign(user, case, assignee) -> bool:
    """Set `case.assignee` to `assignee` (a user or None)."""
    role = _role(user)
    if role == Role.ADMIN:
        return True
    if role != Role.PATHOLOGIST:
        return False
    if assignee is None:
        return case.assignee_id == user.pk
    return assignee.pk == user.pk and case.assignee_id in (None, user.pk)


def can_cancel_analysis(user, job) -> bool:
    """Stop an analysis job: whoever asked, or a pathologist or admin of the job's department."""
    role = _role(user)
    return role in {Role.ADMIN, Role.PATHOLOGIST} or (role is not None and job.requester_id == user.pk)


def can_be_assigned(user) -> bool:
    """Whether `user` may hold a case: only someone who could sign it out."""
    return user.is_active and _role(user) in {Role.ADMIN, Role.PATHOLOGIST}


def can_add_addendum(user) -> bool:
    return _role(user) in {Role.ADMIN, Role.PATHOLOGIST}


def can_read_audit(user) -> bool:
    return _role(user) == Role.ADMIN
