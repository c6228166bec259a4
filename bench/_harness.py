"""Shared set-up for benchmarks that need the web stack: a fresh database, a user, a slide, a server.

Benchmarks run under `make bench`, which provides DATABASE_URL and REDIS_URL (webapp/devservices.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import psycopg

logging.getLogger("httpx").setLevel(logging.WARNING)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def fresh_database(name: str) -> str:
    """Drop and create database `name` next to DATABASE_URL's; return its URL."""
    base = os.environ["DATABASE_URL"]
    parts = urlparse(base)
    admin_url = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(parts._replace(path=f"/{name}"))


@contextmanager
def django_env(database: str, **extra: str):
    """Configure this process's Django for `database` (fresh) and yield the env for child processes."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=fresh_database(database),
        DJANGO_SETTINGS_MODULE="webapp.settings",
        SECRET_KEY="bench-only",
        MEDIA_ROOT=tempfile.mkdtemp(prefix="pathdesk-bench-media-"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    os.environ.update(env)
    # The bench owns its Redis database (`make bench`: number 14) as it owns its PostgreSQL one: a stale
    # lease, queued task or log of an earlier (interrupted) run must not meet this run's job ids.
    import redis

    if not env.get("REDIS_URL"):
        raise RuntimeError("run the benches with `make bench`, or set REDIS_URL to a Redis database they may empty")
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    yield env


def make_user_and_case():
    from rest_framework.authtoken.models import Token

    from webapp.accounts.models import Department, User
    from webapp.cases.models import Case

    department = Department.objects.create(name="Bench", code="bench")
    user = User.objects.create_user("bench", password="bench-password")
    user.departments.add(department)
    user.set_role("pathologist")
    token = Token.objects.create(user=user).key
    case = Case.objects.create(department=department, accession_number="BENCH-1")
    return token, case


def ingest_now(case, path: Path):
    """Store a slide and ingest it in this process (the queued task, if any worker sees it, finds it done)."""
    from webapp.wsi.ingest import ingest_slide
    from webapp.wsi.services import add_slide_from_path

    slide = add_slide_from_path(case, path)
    result = ingest_slide(slide.pk)
    if result is None or result.status != "ready":
        raise RuntimeError(f"bench slide did not ingest: {result}")
    slide.refresh_from_db()
    return slide


@contextmanager
def uvicorn(env: dict[str, str], port: int):
    log = OUT / f"uvicorn-{port}.log"
    OUT.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/api/auth/csrf/", timeout=1).status_code == 204:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(15)
