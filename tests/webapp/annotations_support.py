"""Helpers for the annotation tests: slides without ingestion, websocket clients, GeoJSON builders."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from urllib.parse import urlparse

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

_accessions = iter(range(1, 1_000_000))


def make_slide(department, *, width: int = 20_000, height: int = 15_000):
    """A ready slide row of `width` × `height` level-0 px: annotations only need the row and its size."""
    from webapp.cases.models import Case
    from webapp.wsi.models import Slide

    case = Case.objects.create(department=department, accession_number=f"ANN-{next(_accessions)}")
    return Slide.objects.create(
        case=case, original_filename="annotated.svs", stored_path="none", sha256="0" * 64, size=1,
        status="ready", metadata={"width": width, "height": height},
    )


def square(x: float, y: float, size: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}


def feature(geometry: dict, classification: str | None = None, color=(200, 0, 0), **properties) -> dict:
    properties = {"objectType": "annotation", **properties}
    if classification is not None:
        properties["classification"] = {"name": classification, "color": list(color)}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def collection(*features: dict) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def import_geojson(client: httpx.Client, slide_id: int, document) -> httpx.Response:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post(f"/api/slides/{slide_id}/annotations/import", content=body,
                       headers={"Content-Type": "application/geo+json"})


def create(client: httpx.Client, slide_id: int, geometry: dict, **fields) -> dict:
    response = client.post(f"/api/slides/{slide_id}/annotations/", json={"geometry": geometry, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def all_annotations(client: httpx.Client, slide_id: int, **params) -> list[dict]:
    """Every page of the list endpoint."""
    url: str | None = f"/api/slides/{slide_id}/annotations/"
    found: list[dict] = []
    while url:
        response = client.get(url, params=params if url.startswith("/api/") else None)
        assert response.status_code == 200, response.text
        body = response.json()
        found.extend(body["results"])
        url = body["next"]
    return found


def token_of(client: httpx.Client) -> str:
    return client.headers["Authorization"].split(" ", 1)[1]


@contextmanager
def slide_socket(base_url: str, slide_id: int, token: str | None, origin: str | None = None):
    """A websocket on /ws/slides/<id>/ authenticated by token, with the server's own origin."""
    parsed = urlparse(base_url)
    headers = {"Authorization": f"Token {token}"} if token else {}
    with connect(f"ws://{parsed.netloc}/ws/slides/{slide_id}/", additional_headers=headers,
                 origin=origin or base_url, open_timeout=10) as ws:
        yield ws


def next_message(ws: ClientConnection, prefix: str = "", timeout: float = 5) -> dict:
    """The next message whose type starts with `prefix` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {prefix or 'message'} within {timeout}s")
        try:
            message = json.loads(ws.recv(timeout=remaining))
        except TimeoutError:
            raise AssertionError(f"no {prefix or 'message'} within {timeout}s") from None
        if message["type"].startswith(prefix):
            return message


def no_message(ws: ClientConnection, prefix: str, wait: float = 0.5) -> None:
    try:
        message = next_message(ws, prefix, timeout=wait)
    except AssertionError:
        return
    raise AssertionError(f"unexpected message {message}")


def close_code(ws: ClientConnection, timeout: float = 5) -> int | None:
    """Wait for the server to close the connection; its close code."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
