"""Every change to a case: checked against the role rules, audited (before → after) in the same
transaction, and announced on the live worklist after commit.

Views call these; so will the analysis jobs (`update_triage_score`). Errors are `CaseError`s with a
message a person can act on; the API maps them to 400 / 403 / 409.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp import audit
from webapp.accounts import permissions
from webapp.accounts.models import Role
from webapp.api import Conflict, Forbidden, Invalid, ServiceError
from webapp.cases.events import announce
from webapp.cases.models import Case, CaseAddendum, CaseStatus

logger = logging.getLogger(__name__)

# Fields whose edits are audited with their old and new values.
AUDITED_FIELDS = [
    "accession_number", "patient_pseudonym", "organ", "clinical_notes", "priority", "status", "assignee",
    "department", "received_at", "due_at",
]
# received → in review → signed out; a case may go back from review to received, never out of signed out.
TRANSITIONS = {
    CaseStatus.RECEIVED: {CaseStatus.IN_REVIEW},
    CaseStatus.IN_REVIEW: {CaseStatus.RECEIVED, CaseStatus.SIGNED_OUT},
    CaseStatus.SIGNED_OUT: set(),
}


class CaseError(ServiceError):
    """A refused case change; `status` is the HTTP status the API answers with."""


class CaseInvalid(CaseError, Invalid):
    pass


class CaseForbidden(CaseError, Forbidden):
    pass


class CaseConflict(CaseError, Conflict):
    """The change does not fit the case's current state (signed out, assigned to someone else, …)."""


def _value(case: Case, field: str) -> Any:
    model_field = Case._meta.get_field(field)
    return getattr(case, model_field.attname)


def _snapshot(case: Case, fields: list[str]) -> dict[str, Any]:
    return {field: _value(case, field) for field in fields}


def _locked(case: Case) -> Case:
    """The case's current row, locked until the transaction ends, so concurrent changes queue up."""
    return Case.objects.select_for_update().get(pk=case.pk)


def _refuse_if_signed_out(case: Case) -> None:
    if case.is_signed_out:
        raise CaseConflict(f"case {case.accession_number} is signed out and read-only; add an addendum instead")


def create_case(actor, data: dict[str, Any]) -> Case:
    """Create a case from validated fields (department included)."""
    if not permissions.can_edit_case_metadata(actor):
        raise CaseForbidden("your account has no role that may create cases")
    with transaction.atomic():
        case = Case.objects.create(created_by=actor, **data)
        audit.record(actor, "case.created", case, after=_snapshot(case, AUDITED_FIELDS))
        announce(case, "case.created")
    return case


def edit_case(actor, case: Case, changes: dict[str, Any]) -> Case:
    """Apply validated metadata edits (priority included). A priority change is audited on its own."""
    if not permissions.can_edit_case_metadata(actor):
        raise CaseForbidden("your account has no role that may edit cases")
    with transaction.atomic():
        case = _locked(case)
        _refuse_if_signed_out(case)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for field, value in changes.items():
            old = _value(case, field)
            setattr(case, field, value)
            new = _value(case, field)
            if old != new:
                before[field], after[field] = old, new
        if not after:
            return case
        case.save(update_fields=[*after, "updated_at"])
        priority_changed = "priority" in after
        if priority_changed:
            audit.record(actor, "case.priority_changed", case, before={"priority": before.pop("priority")},
                         after={"priority": after.pop("priority")})
        if after:
            audit.record(actor, "case.updated", case, before=before, after=after)
        announce(case, "case.priority_changed" if priority_changed else "case.updated")
    return case


def assign(actor, case: Case, assignee) -> Case:
    """Make `assignee` (a user, or None to unassign) responsible for the case.

    Pathologists take unassigned cases for themselves and release their own; admins assign anyone who
    may sign out (a pathologist of the case's department, or an admin).
    """
    if permissions._role(actor) not in {Role.ADMIN, Role.PATHOLOGIST}:
        raise CaseForbidden("only pathologists (for themselves) and admins can assign cases")
    with transaction.atomic():
        case = _locked(case)
        _refuse_if_signed_out(case)
        if assignee is not None and not (
            permissions.can_be_assigned(assignee)
            and (assignee.is_admin or assignee.departments.filter(pk=case.department_id).exists())
        ):
            raise CaseInvalid(f"user {assignee.pk} is not a pathologist of the case's department")
        if not permissions.can_assign(actor, case, assignee):
            if assignee is not None and assignee.pk == actor.pk:
                raise CaseConflict("the case is assigned to someone else; an admin can reassign it")
            raise CaseForbidden("pathologists can assign cases only to themselves; an admin can assign others")
        old = case.assignee_id
        new = assignee.pk if assignee is not None else None
        if old == new:
            return case
        case.assignee = assignee
        case.save(update_fields=["assignee", "updated_at"])
        audit.record(actor, "case.assigned", case, before={"assignee": old}, after={"assignee": new})
        announce(case, "case.assigned")
    return case


def change_status(actor, case: Case, status: str) -> Case:
    """Move the case along received → in review → signed out (or back from review to received)."""
    if status not in CaseStatus.values:
        raise CaseInvalid(f"unknown status {status!r}; expected one of {', '.join(CaseStatus.values)}")
    with transaction.atomic():
        case = _locked(case)
        if status == CaseStatus.SIGNED_OUT:
            if not permissions.can_sign_out(actor, case):
                raise CaseForbidden("only the assigned pathologist or an admin can sign out a case")
        elif not permissions.can_change_review_state(actor):
            raise CaseForbidden("only residents, pathologists and admins can change a case's review state")
        _refuse_if_signed_out(case)
        if status == case.status:
            return case
        if status not in TRANSITIONS[CaseStatus(case.status)]:
            raise CaseConflict(f"a case cannot go from {case.status} to {status}")
        before = {"status": case.status}
        case.status = status
        fields = ["status", "updated_at"]
        if status == CaseStatus.SIGNED_OUT:
            case.signed_out_at = timezone.now()
            case.signed_out_by = actor
            fields += ["signed_out_at", "signed_out_by"]
        case.save(update_fields=fields)
        after = {"status": status}
        if status == CaseStatus.SIGNED_OUT:
            after.update(signed_out_at=case.signed_out_at, signed_out_by=actor.pk)
        audit.record(actor, "case.status_changed", case, before=before, after=after)
        announce(case, "case.status_changed")
    return case


def add_addendum(actor, case: Case, text: str) -> CaseAddendum:
    """Append an addendum to a signed-out case (the only change a signed-out case accepts)."""
    if not permissions.can_add_addendum(actor):
        raise CaseForbidden("only pathologists and admins can add addenda")
    if not text.strip():
        raise CaseInvalid("text: an addendum must not be blank")
    with transaction.atomic():
        case = _locked(case)
        if not case.is_signed_out:
            raise CaseConflict("addenda are for signed-out cases; edit the case while it is open")
        addendum = CaseAddendum.objects.create(case=case, author=actor, text=text.strip())
        audit.record(actor, "case.addendum_added", addendum, case=case, after={"text": addendum.text})
    return addendum


def record_view(actor, case: Case) -> None:
    audit.record(actor, "case.viewed", case)


def update_triage_score(
    case_id: int, score: float, job_id: int | None = None, *, scored_at: datetime | None = None
) -> Case | None:
    """Set the case's AI triage score from a finished analysis of its department's triage task.

    `score` is a probability in [0, 1] (higher = look sooner); `job_id` the analysis job that produced it;
    `scored_at` when that job finished (default now). A result older than the stored one is ignored, so
    jobs finishing out of order cannot overwrite a newer score; so is a score for a signed-out case, which
    is read-only. A missing case is logged and None returned (the job may outlive it).
    Callers: the analysis job's completion, when `job.task == case.department.triage_task`.
    """
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) or not 0 <= score <= 1:
        raise ValueError(f"a triage score is a probability in [0, 1], not {score!r}")
    scored_at = scored_at or timezone.now()
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=case_id).first()
        if case is None:
            logger.warning("triage score for missing case %s (job %s) ignored", case_id, job_id)
            return None
        if case.is_signed_out:
            logger.info("triage score for signed-out case %s (job %s) ignored", case_id, job_id)
            return case
        if case.triage_scored_at is not None and scored_at < case.triage_scored_at:
            logger.info("older triage score for case %s (job %s) ignored", case_id, job_id)
            return case
        before = _snapshot(case, ["triage_score", "triage_job_id"])
        case.triage_score, case.triage_job_id, case.triage_scored_at = float(score), job_id, scored_at
        case.save(update_fields=["triage_score", "triage_job_id", "triage_scored_at", "updated_at"])
        audit.record(None, "case.triage_scored", case, before=before,
                     after={"triage_score": case.triage_score, "triage_job_id": job_id})
        announce(case, "case.triage_scored")
    return case
