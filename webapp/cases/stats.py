"""Turnaround: hours from received to signed out, per priority (is stat really fast?)."""

from __future__ import annotations

import math
from collections import defaultdict

from django.db.models import QuerySet

from webapp.cases.models import CaseStatus, Priority

# Most urgent first, as on the worklist.
PRIORITIES = [Priority.STAT, Priority.URGENT, Priority.ROUTINE]


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation (PostgreSQL's percentile_cont)."""
    position = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def turnaround_by_priority(cases: QuerySet) -> list[dict]:
    """For the signed-out cases among `cases`: per priority, count, median and p90 turnaround in hours
    (None without cases)."""
    hours: dict[str, list[float]] = defaultdict(list)
    rows = cases.filter(status=CaseStatus.SIGNED_OUT, signed_out_at__isnull=False).values_list(
        "priority", "received_at", "signed_out_at"
    )
    for priority, received_at, signed_out_at in rows.order_by():
        hours[priority].append((signed_out_at - received_at).total_seconds() / 3600)
    result = []
    for priority in PRIORITIES:
        values = sorted(hours[priority])
        result.append(
            {
                "priority": priority.value,
                "count": len(values),
                "median_hours": round(percentile(values, 50), 3) if values else None,
                "p90_hours": round(percentile(values, 90), 3) if values else None,
            }
        )
    return result
