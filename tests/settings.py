"""Settings for the test suite: the production settings, pointed at PostgreSQL and Redis.

`make test` provides DATABASE_URL and REDIS_URL (see webapp/devservices.py). Run directly with pytest,
this module looks for the servers on their standard local ports and refuses SQLite: the suite is
meant to run on the real parts.
"""

from __future__ import annotations

import os
import tempfile

from django.core.exceptions import ImproperlyConfigured

from webapp.devservices import port_open

if not os.environ.get("DATABASE_URL"):
    if not port_open("127.0.0.1", 5432):
        raise ImproperlyConfigured("the tests need PostgreSQL: run `make test`, or set DATABASE_URL")
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/pathdesk"
if not os.environ.get("REDIS_URL"):
    if not port_open("127.0.0.1", 6379):
        raise ImproperlyConfigured("the tests need Redis: run `make test`, or set REDIS_URL")
    # Several developers' runs may share this machine's Redis: one database number per run.
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}"
if not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("the tests run on PostgreSQL; DATABASE_URL names another database")

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="pathdesk-test-media-"))
# Small enough to test the 413 path with a modest (sparse) upload, large enough for an 8000×7000 plain TIFF.
os.environ.setdefault("SLIDE_UPLOAD_MAX_BYTES", str(192 * 1024 * 1024))
os.environ.setdefault("TILE_CACHE_MAX_BYTES", str(64 * 1024 * 1024))
os.environ.setdefault("LOGIN_THROTTLE_RATE", "1000/min")
os.environ.setdefault("TILE_ACCESS_TTL", "1")

from webapp.settings import *  # noqa: E402,F403

# One test database per run, so runs on a shared PostgreSQL never collide; child processes
# (uvicorn, celery) are pointed at it by tests/conftest.py.
DATABASES["default"]["TEST"] = {"NAME": os.environ.setdefault("PATHDESK_TEST_DB", f"test_pathdesk_{os.getpid()}")}  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
