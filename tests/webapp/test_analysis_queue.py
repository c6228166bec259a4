"""The GPU queue: a killed worker's job is finished by another, and stat jobs overtake waiting routine jobs.

Two real `celery worker -Q gpu -c 1` processes; the broker's visibility timeout is 5 s in the tests
(tests/webapp/analysis_support.py), an hour by default.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.webapp.analysis_support import (  # noqa: F401  (*_fixture: fixtures)
    Watcher,
    analysis_stack_fixture,
    ask,
    assert_clean_sequence,
    finished,
    gpu_workers_fixture,
    make_case,
    ready_slide,
    text_of,
    tiny_checkpoint_fixture,
    wait_for_job,
)

pytestmark = pytest.mark.django_db(transaction=True)


# Long enough to kill mid-generation after the first token, short enough to finish within the 8 s
# visibility timeout of the tests (longer jobs are delivered twice: see webapp/analysis/tasks.py).
TOKENS = 320


@pytest.fixture
def slide(people):
    return ready_slide(make_case(people.department, "S26-QUEUE"))


def _pool_child(main_pid: int) -> int:
    children = Path(f"/proc/{main_pid}/task/{main_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def _assert_clean_rerun(watcher: Watcher, job, tokens: int) -> None:
    """One `restart`, then the whole answer once; the stored text is the second run's only."""
    assert watcher.error is None, watcher.error
    types = watcher.types()
    assert types.count("restart") == 1, types
    first_run = text_of(watcher.messages[: types.index("restart")])
    done = watcher.messages[-1]
    assert done["type"] == "done" and done["status"] == "succeeded", done
    assert_clean_sequence(watcher.messages)
    assert job.status == "succeeded" and job.attempt == 2
    assert job.text == done["text"] == text_of(watcher.messages)
    assert job.result["generated_tokens"] == tokens
    # Greedy decoding of the same request: the interrupted run's text is where the final one starts.
    assert first_run and job.text.startswith(first_run) and len(job.text) > len(first_run)


def test_a_worker_killed_mid_generation_leaves_the_job_to_another_worker(people, slide, analysis_stack, asgi_server):
    """The whole worker (main process and pool child) dies: its message is restored after the visibility timeout."""
    from webapp.analysis.models import AnalysisJob

    client = people.owner.client
    created = ask(client, slide.pk, max_new_tokens=TOKENS)
    watcher = Watcher(asgi_server.url, created["id"], client)
    watcher.wait_tokens(1)
    job = AnalysisJob.objects.get(pk=created["id"])
    victim = analysis_stack.running(job.worker)
    analysis_stack.kill(victim)
    watcher.wait(90)
    job.refresh_from_db()
    assert not job.worker.startswith(victim.hostname_prefix), job.worker
    _assert_clean_rerun(watcher, job, TOKENS)


def test_a_pool_process_killed_mid_generation_is_rerun_at_once(people, slide, analysis_stack, asgi_server):
    """Only the pool child dies (OOM killer): its parent requeues the message at once (reject_on_worker_lost)."""
    from webapp.analysis.models import AnalysisJob

    client = people.owner.client
    created = ask(client, slide.pk, max_new_tokens=TOKENS)
    watcher = Watcher(asgi_server.url, created["id"], client)
    watcher.wait_tokens(1)
    job = AnalysisJob.objects.get(pk=created["id"])
    victim = analysis_stack.running(job.worker)
    killed_at = time.time()
    os.kill(_pool_child(victim.process.pid), signal.SIGKILL)
    watcher.wait(90)
    job.refresh_from_db()
    _assert_clean_rerun(watcher, job, TOKENS)
    # Re-run once the dead run's lease (2 s here) expired, well before the 5 s visibility timeout + sweep.
    restarted_at = next(t for t, m in watcher.received if m["type"] == "restart")
    assert restarted_at - killed_at < 5.0


def test_a_stat_job_overtakes_waiting_routine_jobs(people, analysis_stack, asgi_server):
    from webapp.analysis.models import AnalysisJob

    client = people.owner.client
    routine = ready_slide(make_case(people.department, "S26-ROUTINE", "routine"))
    stat = ready_slide(make_case(people.department, "S26-STAT", "stat"))
    # Both workers busy (different lengths, so they do not free up at the same moment)…
    busy = [ask(client, routine.pk, max_new_tokens=n)["id"] for n in (100, 300)]
    for job_id in busy:
        wait_for_job(client, job_id, lambda job: job["status"] == "running")
    # …while two routine jobs and then a stat job wait in the queue.
    waiting = [ask(client, routine.pk, max_new_tokens=4)["id"] for _ in range(2)]
    urgent = ask(client, stat.pk, max_new_tokens=4)["id"]
    assert AnalysisJob.objects.get(pk=busy[0]).status == "running", "a busy job ended before the queue filled up"
    for job_id in [*busy, *waiting, urgent]:
        assert wait_for_job(client, job_id, finished)["status"] == "succeeded"
    started = {job.pk: job.started_at for job in AnalysisJob.objects.all()}
    assert started[urgent] < started[waiting[0]] < started[waiting[1]]
    assert AnalysisJob.objects.get(pk=urgent).priority == "stat"
