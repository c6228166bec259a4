"""Shared fixtures: real servers in real processes.

- `asgi_server`: uvicorn serving webapp.asgi on a free port, against the test database.
- `ingest_worker`: a `celery worker -Q ingest` process.
- `people`: two departments with an owner, a colleague, an outsider and an admin, each with an
  httpx client authenticated by token.
Tests that talk to these processes use `@pytest.mark.django_db(transaction=True)` so that what they
write is committed and visible to the other processes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from webapp.devservices import free_port

logging.getLogger("httpx").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT.parent / "shared" / "testdata"
LOG_DIR = Path(os.environ.get("PATHDESK_TEST_LOGS", "/tmp/pathdesk-test-logs"))


def shared_testdata(*parts: str) -> Path:
    path = TESTDATA.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"shared test data missing: {path} (the repo expects ../shared beside it)")
    return path


def _process_env(db_settings: dict) -> dict[str, str]:
    """The environment for child processes: this run's DATABASE_URL, pointed at the test database."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=urlunsplit(parts._replace(path=f"/{db_settings['NAME']}")),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path


def _wait_for(predicate, timeout: float, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early ({process.returncode}); log:\n{log.read_text()[-4000:]}")
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s; log:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def process_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    from django.db import connection

    with django_db_blocker.unblock():
        settings_dict = connection.settings_dict
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return _process_env(settings_dict)


@pytest.fixture(scope="session")
def asgi_server(process_env) -> Iterator[Server]:
    port = free_port()
    log = LOG_DIR / "asgi.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=process_env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/auth/csrf/", timeout=1).status_code == 204
        except httpx.HTTPError:
            return False

    _wait_for(answers, 60, "uvicorn", process, log)
    yield Server(url, process, log)
    _stop(process)


@pytest.fixture(scope="session")
def ingest_worker(process_env) -> Iterator[Server]:
    log = LOG_DIR / "celery-ingest.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "ingest", "-c", "2", "--pool", "prefork",
             "-n", f"ingest-test-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
            cwd=ROOT, env=process_env, stdout=out, stderr=subprocess.STDOUT,
        )
    _wait_for(lambda: "ready." in log.read_text(), 90, "celery worker", process, log)
    yield Server("", process, log)
    _stop(process)


@dataclass
class Person:
    user: object
    client: httpx.Client


@dataclass
class People:
    department: object
    other_department: object
    owner: Person
    colleague: Person
    outsider: Person
    admin: Person
    anonymous: httpx.Client


def make_person(base_url: str, username: str, role: str, departments: list, *, superuser: bool = False) -> Person:
    from rest_framework.authtoken.models import Token

    from webapp.accounts.models import User

    user = User.objects.create_user(username=username, password=f"{username}-password", is_superuser=superuser)
    user.departments.set(departments)
    user.set_role(role)
    token = Token.objects.create(user=user)
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token.key}"}, timeout=30)
    return Person(user, client)


@pytest.fixture
def people(asgi_server) -> Iterator[People]:
    from webapp.accounts.models import Department

    histo = Department.objects.create(name="Histopathology North", code="histo-north")
    other = Department.objects.create(name="Dermatopathology South", code="derm-south")
    result = People(
        department=histo,
        other_department=other,
        owner=make_person(asgi_server.url, "owner", "pathologist", [histo]),
        colleague=make_person(asgi_server.url, "colleague", "technician", [histo]),
        outsider=make_person(asgi_server.url, "outsider", "pathologist", [other]),
        admin=make_person(asgi_server.url, "admin", "admin", []),
        anonymous=httpx.Client(base_url=asgi_server.url, timeout=30),
    )
    yield result
    for client in [result.owner.client, result.colleague.client, result.outsider.client, result.admin.client,
                   result.anonymous]:
        client.close()


def create_case(client: httpx.Client, accession: str = "S26-00001", **fields) -> dict:
    response = client.post("/api/cases/", json={"accession_number": accession, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def upload(client: httpx.Client, case_id: int, path: Path, filename: str | None = None) -> httpx.Response:
    with path.open("rb") as handle:
        return client.post(
            "/api/slides/", data={"case": str(case_id)}, files={"file": (filename or path.name, handle)}
        )


def wait_until_processed(client: httpx.Client, slide_id: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slide = client.get(f"/api/slides/{slide_id}/").json()
        if slide["status"] != "pending":
            return slide
        time.sleep(0.2)
    raise AssertionError(f"slide {slide_id} still pending after {timeout}s")
