"""Fixtures and helpers for the analysis tests: a tiny OmniPath checkpoint, GPU-queue workers on CPU,
slides ingested in-process, and a websocket watcher that records every message with its arrival time.

The child processes (uvicorn, celery) get their configuration from the environment, which tests/conftest.py
copies once per session (`process_env`). This module is imported when the analysis tests are collected,
before any fixture runs, so the variables set here reach every child: the checkpoint path (filled in by
the `tiny_checkpoint` fixture), a shared feature store, short leases and a short broker visibility timeout
(a killed worker's job is re-delivered within seconds instead of an hour).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.conftest import LOG_DIR, ROOT, _stop, _wait_for

RUN_DIR = Path(tempfile.gettempdir()) / f"pathdesk-analysis-{os.getpid()}"
MODEL_DIR = RUN_DIR / "omnipath-tiny"
ENV = {
    "OMNIPATH_MODEL": str(MODEL_DIR),
    "PATHDESK_FEATURE_STORE": str(RUN_DIR / "features"),
    "ANALYSIS_LEASE_SECONDS": "2",
    # Longer than any test job (a job outliving it is delivered a second time; see webapp/analysis/tasks.py).
    "BROKER_VISIBILITY_TIMEOUT": "8",
    "BROKER_RESTORE_INTERVAL": "1",
    "ANALYSIS_THROTTLE_RATE": "12/min",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Two workers, a web server and the tests share two cores: one torch thread each keeps them fair.
    "OMP_NUM_THREADS": "1",
}
os.environ.update(ENV)
GPU_WORKERS = ("gpu-a", "gpu-b")


# -- processes ---------------------------------------------------------------------------------------------

@dataclass
class GpuWorker:
    name: str
    process: subprocess.Popen
    log: Path
    offset: int = 0  # where this process's lines start in the (appended) log

    @property
    def hostname_prefix(self) -> str:
        return f"{self.name}-{os.getpid()}@"

    def warm(self) -> bool:
        with self.log.open("rb") as log:
            log.seek(self.offset)
            return b"loaded omnipath:" in log.read()


@dataclass
class GpuWorkers:
    env: dict[str, str]
    workers: dict[str, GpuWorker] = field(default_factory=dict)

    def start(self, name: str) -> GpuWorker:
        log = LOG_DIR / f"celery-{name}.log"
        offset = log.stat().st_size if log.exists() and name in self.workers else 0
        with log.open("a" if offset else "w") as out:
            # Own process group: SIGKILL of the group takes the main process and its pool child, like a
            # node or container going away.
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu", "-c", "1", "--pool", "prefork",
                 "-n", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        worker = GpuWorker(name, process, log, offset)
        self.workers[name] = worker
        return worker

    def wait_ready(self, timeout: float = 120) -> None:
        """Every worker started, its model loaded (warm)."""
        for worker in self.workers.values():
            _wait_for(worker.warm, timeout, f"gpu worker {worker.name}", worker.process, worker.log)

    def running(self, hostname: str) -> GpuWorker:
        for worker in self.workers.values():
            if hostname.startswith(worker.hostname_prefix):
                return worker
        raise AssertionError(f"no test worker is called {hostname}")

    def kill(self, worker: GpuWorker) -> None:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(10)

    def stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                _stop(worker.process)
            try:
                os.killpg(worker.process.pid, signal.SIGKILL)  # a pool child left behind
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session", name="tiny_checkpoint")
def tiny_checkpoint_fixture(process_env) -> Iterator[Path]:
    """The tiny random OmniPath checkpoint at OMNIPATH_MODEL (made once per session, by the real CLI)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    if not (MODEL_DIR / "config.json").exists():
        subprocess.run([sys.executable, "-m", "inference", "init-tiny", str(MODEL_DIR)], cwd=ROOT, env=process_env,
                       check=True, capture_output=True)
    yield MODEL_DIR
    shutil.rmtree(RUN_DIR, ignore_errors=True)


_workers: GpuWorkers | None = None


@pytest.fixture(scope="session", name="gpu_workers")
def gpu_workers_fixture(process_env, tiny_checkpoint) -> Iterator[GpuWorkers]:
    """Two `celery worker -Q gpu -c 1` processes (one model process each), warm.

    Each test module that imports this fixture gets its own session-scoped instance from pytest, so the
    processes live in this module: one pair per test session, stopped at its end.
    """
    global _workers
    if _workers is None:
        _workers = GpuWorkers({**process_env, **ENV})
        for name in GPU_WORKERS:
            _workers.start(name)
    _workers.wait_ready()
    yield _workers
    _workers.stop_all()


@pytest.fixture(name="analysis_stack")
def analysis_stack_fixture(asgi_server, gpu_workers) -> Iterator[GpuWorkers]:
    """Web server and both GPU workers up and warm (a worker killed by a test is started again here)."""
    for name in GPU_WORKERS:
        worker = gpu_workers.workers[name]
        if worker.process.poll() is not None:
            gpu_workers.start(name)
    gpu_workers.wait_ready()
    yield gpu_workers


# -- data --------------------------------------------------------------------------------------------------

_SLIDES: dict[tuple[int, int], Path] = {}


def synthetic_slide(size: tuple[int, int] = (2048, 1536)) -> Path:
    """A pyramidal TIFF at 0.5 µm/px (20×), one file per size and session (the feature store keeps its features)."""
    from slides.synth import write_pyramidal_tiff

    if size not in _SLIDES:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        _SLIDES[size] = write_pyramidal_tiff(RUN_DIR / f"slide-{size[0]}x{size[1]}.tiff", size, mpp=0.5, aperio=True)
    return _SLIDES[size]


def ready_slide(case, path: Path | None = None):
    """A `ready` slide of `case`, stored and ingested in this process (the real ingestion function)."""
    from webapp.wsi.ingest import ingest_slide
    from webapp.wsi.models import Slide
    from webapp.wsi.services import add_slide_from_path

    slide = add_slide_from_path(case, path or synthetic_slide(), filename="analysis.tiff")
    result = ingest_slide(slide.pk)
    assert result is not None and result.status == "ready", result
    return Slide.objects.get(pk=slide.pk)


def make_case(department, accession: str, priority: str = "routine"):
    from webapp.cases.models import Case

    return Case.objects.create(department=department, accession_number=accession, priority=priority)


def held_job(slide, requester, **fields):
    """A queued job that was never handed to the broker: nothing runs it until the test says so."""
    from webapp.analysis.models import AnalysisJob

    return AnalysisJob.objects.create(slide=slide, case=slide.case, requester=requester, task="question",
                                      prompt="Is there carcinoma?", backend="omnipath", **fields)


def ask(client, slide_id: int, *, task: str = "question", prompt: str = "Is there carcinoma?", **extra) -> dict:
    response = client.post("/api/analyses/", json={"slide": slide_id, "task": task, "prompt": prompt, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_job(client, job_id: int, until, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/analyses/{job_id}/").json()
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"analysis {job_id} did not get there in {timeout}s: {job}")


def finished(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


# -- the websocket side ------------------------------------------------------------------------------------

def ws_url(server_url: str, job_id: int, after: int | None = None) -> str:
    url = server_url.replace("http://", "ws://") + f"/ws/analyses/{job_id}/"
    return url if after is None else f"{url}?after={after}"


class Watcher:
    """A websocket client on its own thread: every message with its arrival time (time.time()).

    Stops at `done`/`error`, at `stop_after` token messages (then closes: a reconnecting client), or when
    the server closes (`close_code`).
    """

    def __init__(self, server_url: str, job_id: int, client, *, after: int | None = None,
                 stop_after: int | None = None, headers: dict | None = None, origin: str | None = None) -> None:
        self.url = ws_url(server_url, job_id, after)
        self.origin = origin or server_url  # a browser sends the page's origin
        self.headers = headers if headers is not None else {"Authorization": client.headers["Authorization"]}
        self.stop_after = stop_after
        self.received: list[tuple[float, dict]] = []
        self.close_code: int | None = None
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with connect(self.url, additional_headers=self.headers, origin=self.origin, open_timeout=30) as ws:
                self.opened.set()
                tokens = 0
                for raw in ws:
                    message = json.loads(raw)
                    self.received.append((time.time(), message))
                    tokens += message["type"] == "token"
                    if message["type"] in ("done", "error"):
                        break
                    if self.stop_after is not None and tokens >= self.stop_after:
                        break
                self.close_code = ws.close_code
        except BaseException as exc:  # noqa: BLE001  (reported by the test through wait())
            self.error = exc
            close = getattr(exc, "rcvd", None)
            self.close_code = close.code if close is not None else None
        finally:
            self.opened.set()
            self.ended.set()

    def wait(self, timeout: float = 90) -> Watcher:
        assert self.ended.wait(timeout), f"watcher still waiting after {timeout}s; got {self.types()}"
        return self

    @property
    def messages(self) -> list[dict]:
        return [m for _, m in self.received]

    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]

    def tokens(self) -> int:
        return self.types().count("token")

    def wait_tokens(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.tokens() < count:
            assert not self.ended.is_set() or self.tokens() >= count, f"stream ended early: {self.types()}"
            assert time.monotonic() < deadline, f"fewer than {count} tokens after {timeout}s: {self.types()}"
            time.sleep(0.02)


def text_of(messages: list[dict]) -> str:
    """What a client shows: token texts concatenated, emptied at each `restart`."""
    text = ""
    for message in messages:
        if message["type"] == "restart":
            text = ""
        elif message["type"] == "token":
            text += message["text"]
    return text


def assert_clean_sequence(messages: list[dict], first: int = 1) -> None:
    """Sequence numbers first, first+1, …: in order, no gaps, no duplicates."""
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(first, first + len(seqs))), seqs
