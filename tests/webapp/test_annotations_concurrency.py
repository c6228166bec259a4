"""Optimistic concurrency on real PostgreSQL: of concurrent edits from the same version exactly one wins."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.conftest import make_person
from tests.webapp.annotations_support import create, make_slide, square

pytestmark = pytest.mark.django_db(transaction=True)


def _patch_together(clients: list[httpx.Client], url: str, bodies: list[dict]) -> list[httpx.Response]:
    """Send the PATCHes at the same moment, one thread each."""
    barrier = threading.Barrier(len(clients))
    responses: list[httpx.Response | None] = [None] * len(clients)

    def send(index: int) -> None:
        barrier.wait()
        responses[index] = clients[index].patch(url, json=bodies[index])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return responses  # type: ignore[return-value]


def test_two_editors_one_wins_the_other_gets_409_and_nothing_is_lost(people, asgi_server):
    slide = make_slide(people.department)
    resident = make_person(asgi_server.url, "resident", "resident", [people.department])
    made = create(people.owner.client, slide.pk, square(0, 0, 10), note="draft")
    url = f"/api/annotations/{made['id']}/"

    first, second = _patch_together(
        [people.owner.client, resident.client], url,
        [{"note": "owner's note", "version": 1}, {"note": "resident's note", "version": 1}],
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    winner, loser = (first, second) if first.status_code == 200 else (second, first)
    loser_client = resident.client if loser is second else people.owner.client
    current = loser.json()["current"]
    assert current == winner.json()
    assert current["version"] == 2

    # The loser re-applies on top of what it was shown: both changes end up in the history.
    retried = loser_client.patch(url, json={"note": current["note"] + " + more", "version": current["version"]})
    assert retried.status_code == 200, retried.text
    history = people.owner.client.get(f"{url}history/").json()["results"]
    assert [(h["version"], h["after"]["note"]) for h in history] == [
        (1, "draft"),
        (2, winner.json()["note"]),
        (3, winner.json()["note"] + " + more"),
    ]
    assert {h["actor"] for h in history[1:]} == {people.owner.user.pk, resident.user.pk}
    resident.client.close()


def test_many_simultaneous_editors_of_one_version_produce_one_winner(people, asgi_server):
    slide = make_slide(people.department)
    made = create(people.owner.client, slide.pk, square(0, 0, 10))
    url = f"/api/annotations/{made['id']}/"
    clients = [httpx.Client(base_url=asgi_server.url, headers=people.owner.client.headers, timeout=30)
               for _ in range(8)]
    try:
        responses = _patch_together(clients, url, [{"note": f"edit {i}", "version": 1} for i in range(8)])
    finally:
        for client in clients:
            client.close()
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7
    history = people.owner.client.get(f"{url}history/").json()["results"]
    assert [h["version"] for h in history] == [1, 2]
    assert people.owner.client.get(url).json()["version"] == 2
