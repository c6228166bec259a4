"""Worklist query parameters → queryset filters and ordering (`GET /api/cases/`, `/counts/`, stats).

Bad values are a 400 naming the parameter, never silently ignored.
"""

from __future__ import annotations

from datetime import datetime, time

from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.exceptions import ValidationError

from webapp.cases.models import WORKLIST_ORDER, CaseStatus, Priority

FILTER_PARAMETERS = {
    "status": "one or more of received, in_review, signed_out (comma-separated)",
    "priority": "one or more of routine, urgent, stat (comma-separated)",
    "assignee": '"me", "none", or a user id',
    "organ": "organ or specimen site (case-insensitive exact match)",
    "department": "a department id",
    "due_before": "ISO date or date-time; cases due before it (cases without a due time are left out)",
    "has_ai_result": "true / false: whether the case has an AI triage score",
    "min_score": "cases whose AI triage score is at least this (0–1)",
    "q": "text search in accession number and patient pseudonym",
}
ORDERINGS = {
    "worklist": WORKLIST_ORDER,
    "ai_score": [F("triage_score").asc(nulls_last=True), *WORKLIST_ORDER],
    "-ai_score": [F("triage_score").desc(nulls_last=True), *WORKLIST_ORDER],
    "received_at": [F("received_at").asc(), F("id").asc()],
    "-received_at": [F("received_at").desc(), F("id").desc()],
    "due_at": [F("due_at").asc(nulls_last=True), F("id").asc()],
    "-due_at": [F("due_at").desc(nulls_last=True), F("id").desc()],
}
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def _choices(name: str, raw: str, allowed: list[str]) -> list[str]:
    values = [value.strip() for value in raw.split(",") if value.strip()]
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise ValidationError({name: f"expected one or more of {', '.join(allowed)}"})
    return values


def parse_moment(name: str, raw: str) -> datetime:
    """An ISO date-time, or a date meaning its midnight, in the server's time zone when naive."""
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise ValidationError({name: "expected an ISO date or date-time, e.g. 2026-12-10T12:00:00Z"})
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def parse_id(name: str, raw: str) -> int:
    if not raw.isdigit():
        raise ValidationError({name: "must be an integer id"})
    return int(raw)


def filter_cases(cases: QuerySet, params, user, *, skip: tuple[str, ...] = ()) -> QuerySet:
    """Apply the worklist filters in `params` (a QueryDict), except those named in `skip`."""

    def wanted(name: str) -> str | None:
        value = params.get(name)
        return None if name in skip or value is None or value == "" else value

    if (raw := wanted("status")) is not None:
        cases = cases.filter(status__in=_choices("status", raw, CaseStatus.values))
    if (raw := wanted("priority")) is not None:
        cases = cases.filter(priority__in=_choices("priority", raw, Priority.values))
    if (raw := wanted("assignee")) is not None:
        if raw == "me":
            cases = cases.filter(assignee=user)
        elif raw == "none":
            cases = cases.filter(assignee__isnull=True)
        else:
            cases = cases.filter(assignee_id=parse_id("assignee", raw))
    if (raw := wanted("organ")) is not None:
        cases = cases.filter(organ__iexact=raw.strip())
    if (raw := wanted("department")) is not None:
        cases = cases.filter(department_id=parse_id("department", raw))
    if (raw := wanted("due_before")) is not None:
        cases = cases.filter(due_at__lt=parse_moment("due_before", raw))
    if (raw := wanted("has_ai_result")) is not None:
        if raw.lower() not in _TRUE | _FALSE:
            raise ValidationError({"has_ai_result": "expected true or false"})
        cases = cases.filter(triage_score__isnull=raw.lower() in _FALSE)
    if (raw := wanted("min_score")) is not None:
        try:
            minimum = float(raw)
        except ValueError:
            minimum = float("nan")
        if not 0 <= minimum <= 1:
            raise ValidationError({"min_score": "expected a number between 0 and 1"})
        cases = cases.filter(triage_score__gte=minimum)
    if (raw := wanted("q")) is not None:
        text = raw.strip()
        cases = cases.filter(Q(accession_number__icontains=text) | Q(patient_pseudonym__icontains=text))
    return cases


def order_cases(cases: QuerySet, params) -> QuerySet:
    name = params.get("ordering") or "worklist"
    if name not in ORDERINGS:
        raise ValidationError({"ordering": f"expected one of {', '.join(ORDERINGS)}"})
    return cases.order_by(*ORDERINGS[name])
