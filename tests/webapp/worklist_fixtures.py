"""Helpers for the worklist, audit and roles tests: a fuller team, cases made directly in the database,
and a websocket client for `/ws/worklist/`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import People, Person, make_person

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@dataclass
class Team:
    """`people` plus a resident and a second pathologist in the same department.

    Roles by name: technician (people.colleague), resident, pathologist (people.owner, the usual
    assignee), pathologist2, admin, outsider (a pathologist of another department).
    """

    url: str
    people: People
    resident: Person
    pathologist2: Person

    @property
    def department(self):
        return self.people.department

    def by_role(self) -> dict[str, Person]:
        return {
            "technician": self.people.colleague,
            "resident": self.resident,
            "pathologist": self.people.owner,
            "pathologist2": self.pathologist2,
            "admin": self.people.admin,
            "outsider": self.people.outsider,
        }


@pytest.fixture(name="team")
def team_fixture(people, asgi_server) -> Team:
    return Team(
        url=asgi_server.url,
        people=people,
        resident=make_person(asgi_server.url, "resident", "resident", [people.department]),
        pathologist2=make_person(asgi_server.url, "pathologist2", "pathologist", [people.department]),
    )


def make_case(department, accession: str, **fields):
    """A case written straight to the database (committed: the test runs with transaction=True)."""
    from webapp.cases.models import Case

    fields.setdefault("received_at", T0)
    return Case.objects.create(department=department, accession_number=accession, **fields)


def make_slide(case):
    """A pending slide row (no file, no ingestion): enough for list/detail permissions."""
    from webapp.wsi.models import Slide

    return Slide.objects.create(case=case, stored_path="none", sha256="0" * 64, size=1, original_filename="x.svs")


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def token_of(person: Person) -> str:
    return person.client.headers["Authorization"].split(" ", 1)[1]


def ws_url(http_url: str, path: str) -> str:
    return "ws://" + http_url.removeprefix("http://") + path


def worklist_socket(http_url: str, person: Person | None, query: str = "") -> ClientConnection:
    """Open `/ws/worklist/` as `person` (token on the handshake; None = anonymous)."""
    headers = {"Authorization": f"Token {token_of(person)}"} if person is not None else {}
    return connect(ws_url(http_url, "/ws/worklist/" + query), additional_headers=headers, origin=http_url,
                   open_timeout=10)


def receive(ws: ClientConnection, timeout: float = 5) -> dict:
    return json.loads(ws.recv(timeout=timeout))


@contextmanager
def ready(http_url: str, person: Person, query: str = "") -> Iterator[ClientConnection]:
    """A worklist socket that has joined its groups (the server said `worklist.ready`)."""
    with worklist_socket(http_url, person, query) as ws:
        first = receive(ws)
        assert first["event"] == "worklist.ready", first
        yield ws


def close_code(http_url: str, person: Person | None, query: str = "") -> int | None:
    """The close code the server answers with, or None when it keeps the socket open (and says ready)."""
    with worklist_socket(http_url, person, query) as ws:
        try:
            message = receive(ws)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        assert message["event"] == "worklist.ready", message
        return None


def events_until(ws: ClientConnection, event: str, case_id: int, timeout: float = 5) -> dict:
    """The next message for `case_id` with `event`, skipping others."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {event} for case {case_id} within {timeout}s")
        message = receive(ws, remaining)
        if message["event"] == event and message["case"]["id"] == case_id:
            return message
