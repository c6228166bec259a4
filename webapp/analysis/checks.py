"""Start-up checks of the analysis settings (`manage.py check`, and logged by a GPU-queue worker)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


def visibility_timeout_problem() -> str | None:
    """The broker re-delivers an unacknowledged job after BROKER_VISIBILITY_TIMEOUT s; a job may run for
    ANALYSIS_TIME_LIMIT s. A shorter visibility timeout re-delivers running jobs: the lease keeps them from
    running twice (the copy waits, then finds the job finished), but each costs a retry loop on a worker."""
    if settings.BROKER_VISIBILITY_TIMEOUT > settings.ANALYSIS_TIME_LIMIT:
        return None
    return (f"BROKER_VISIBILITY_TIMEOUT ({settings.BROKER_VISIBILITY_TIMEOUT} s) is not longer than "
            f"ANALYSIS_TIME_LIMIT ({settings.ANALYSIS_TIME_LIMIT} s): analyses running longer than it are "
            "delivered again and wait on their lease")


@checks.register()
def check_visibility_timeout(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problem = visibility_timeout_problem()
    if problem is None:
        return []
    return [checks.Warning(problem, hint="raise BROKER_VISIBILITY_TIMEOUT above ANALYSIS_TIME_LIMIT",
                           id="analysis.W001")]
