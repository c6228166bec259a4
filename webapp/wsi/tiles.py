"""The tile server: DeepZoom descriptor and tiles, thumbnails and associated images.

This is the viewer's hot path (hundreds of requests per screen), so it is a small ASGI app in front
of Django rather than a Django view: a request that matches one of the paths below never goes
through the middleware stack. It keeps the same rules as the REST API — token or session
authentication, department visibility (404 otherwise), JSON errors — and asks Django for them:
the access decision for (credential, slide) is made by Django's auth and ORM in a thread pool and
remembered for TILE_ACCESS_TTL seconds, so a cached tile costs one Redis GET.

    GET /api/slides/{id}/dzi.dzi
    GET /api/slides/{id}/dzi_files/{dz_level}/{tile_col}_{tile_row}.jpeg
    GET /api/slides/{id}/thumbnail.jpeg
    GET /api/slides/{id}/associated/{name}.jpeg
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db import close_old_connections

import slides
from webapp.wsi import storage, tilecache
from webapp.wsi.ingest import thumbnail_path
from webapp.wsi.models import Slide, SlideStatus

TILE_SIZE = 254
OVERLAP = 1
FORMAT = "jpeg"
CACHE_CONTROL = b"private, max-age=31536000, immutable"

ROUTE = re.compile(
    r"^/api/slides/(?P<slide_id>\d{1,18})/(?:"
    r"dzi\.dzi"
    r"|dzi_files/(?P<dz_level>\d{1,3})/(?P<tile_col>\d{1,9})_(?P<tile_row>\d{1,9})\.jpeg"
    r"|(?P<thumbnail>thumbnail)\.jpeg"
    r"|associated/(?P<associated>[A-Za-z0-9_.-]{1,64})\.jpeg"
    r")$"
)

_db_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tiles-auth")
_render_pool = ThreadPoolExecutor(max_workers=settings.TILE_WORKERS, thread_name_prefix="tiles-render")
_handles = slides.SlideCache(max_open=settings.SLIDE_HANDLE_CACHE_SIZE)


class Refused(Exception):
    """An answer other than the image: status + a message for `{"error": …}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ReadySlide:
    id: int
    sha256: str
    path: Path
    width: int
    height: int
    associated_images: tuple[str, ...]


class AccessCache:
    """Recent positive access decisions: (credential, slide id) → ReadySlide, for `ttl` seconds.

    Only grants are remembered; a revoked session or membership takes effect within `ttl`.
    """

    def __init__(self, ttl: float, max_entries: int = 20_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], tuple[float, ReadySlide]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> ReadySlide | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                return None
            return entry[1]

    def put(self, key: tuple[str, int], slide: ReadySlide) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, slide)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


_access = AccessCache(ttl=settings.TILE_ACCESS_TTL)


def _credential(headers: dict[bytes, bytes]) -> str | None:
    """'token:<key>' or 'session:<key>' from the request, or None when there is neither."""
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    if authorization:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "token" or not key.strip():
            raise Refused(401, "unsupported Authorization header; use 'Token <key>'")
        return f"token:{key.strip()}"
    cookie = headers.get(b"cookie", b"").decode("latin-1")
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name == settings.SESSION_COOKIE_NAME and value:
            return f"session:{value}"
    return None


def _user_for(credential: str):
    from django.contrib.auth import get_user
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    kind, _, key = credential.partition(":")
    if kind == "token":
        try:
            user, _ = TokenAuthentication().authenticate_credentials(key)
        except AuthenticationFailed as exc:
            raise Refused(401, str(exc.detail)) from None
        return user
    # Django's own session check (expiry, session hash against the password) on a minimal request.
    user = get_user(SimpleNamespace(session=SessionStore(session_key=key)))
    if not user.is_authenticated:
        raise Refused(401, "authentication required")
    return user


def _resolve(credential: str, slide_id: int) -> ReadySlide:
    """Authenticate, check the user may see the slide (404 otherwise) and that it is ready (409)."""
    close_old_connections()
    user = _user_for(credential)
    row = (
        Slide.objects.visible_to(user)
        .filter(pk=slide_id)
        .values("id", "sha256", "stored_path", "status", "failure_reason", "metadata")
        .first()
    )
    if row is None:
        raise Refused(404, "not found")
    if row["status"] == SlideStatus.PENDING:
        raise Refused(409, "the slide is still being processed; try again in a moment")
    if row["status"] == SlideStatus.FAILED:
        raise Refused(409, f"the slide could not be processed: {row['failure_reason']}")
    meta = row["metadata"]
    return ReadySlide(
        id=row["id"],
        sha256=row["sha256"],
        path=storage.slide_path(row["stored_path"]),
        width=int(meta["width"]),
        height=int(meta["height"]),
        associated_images=tuple(meta.get("associated_images") or ()),
    )


async def _ready_slide(headers: dict[bytes, bytes], slide_id: int) -> ReadySlide:
    credential = _credential(headers)
    if credential is None:
        raise Refused(401, "authentication required")
    key = (credential, slide_id)
    slide = _access.get(key)
    if slide is None:
        slide = await asyncio.get_running_loop().run_in_executor(_db_pool, _resolve, credential, slide_id)
        _access.put(key, slide)
    return slide


def dz_level_dimensions(width: int, height: int) -> list[tuple[int, int]]:
    """DeepZoom level sizes in pixels, level 0 = 1×1 up to the full slide (DeepZoom's convention)."""
    count = math.ceil(math.log2(max(width, height, 1))) + 1
    return [
        (max(1, math.ceil(width / 2 ** (count - 1 - level))), max(1, math.ceil(height / 2 ** (count - 1 - level))))
        for level in range(count)
    ]


def _check_address(slide: ReadySlide, dz_level: int, tile_col: int, tile_row: int) -> None:
    levels = dz_level_dimensions(slide.width, slide.height)
    if dz_level >= len(levels):
        raise Refused(404, f"no DeepZoom level {dz_level}: the slide has levels 0–{len(levels) - 1}")
    width, height = levels[dz_level]
    cols, rows = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
    if tile_col >= cols or tile_row >= rows:
        raise Refused(404, f"no tile {tile_col}_{tile_row} at level {dz_level}: it has {cols}×{rows} tiles")


def _render_tile(path: Path, dz_level: int, tile_col: int, tile_row: int) -> bytes:
    with _handles.get(path) as wsi:
        zoom = slides.DeepZoom(wsi, tile_size=TILE_SIZE, overlap=OVERLAP)
        return zoom.get_tile_jpeg(dz_level, tile_col, tile_row, quality=settings.TILE_JPEG_QUALITY)


def _render_associated(path: Path, name: str) -> bytes:
    with _handles.get(path) as wsi:
        image = wsi.associated_image(name)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


async def _render(func, *args) -> bytes:
    try:
        return await asyncio.get_running_loop().run_in_executor(_render_pool, func, *args)
    except slides.TileNotFound as exc:
        raise Refused(404, str(exc)) from None
    except slides.SlideError as exc:
        raise Refused(422, f"the slide could not be read here: {exc}") from None


async def _cached(key: str, func, *args) -> bytes:
    data = await tilecache.get(key)
    if data is None:
        data = await _render(func, *args)
        await tilecache.put(key, data)
    return data


async def _answer(match: re.Match[str], headers: dict[bytes, bytes]) -> tuple[bytes, str, bytes | None]:
    """(ETag, content type, body or None when the client's copy is current) for a matched path."""
    slide = await _ready_slide(headers, int(match["slide_id"]))
    prefix = slide.sha256[:32]
    if match["dz_level"] is not None:
        dz_level, tile_col, tile_row = int(match["dz_level"]), int(match["tile_col"]), int(match["tile_row"])
        _check_address(slide, dz_level, tile_col, tile_row)
        address = f"{TILE_SIZE}-{OVERLAP}-q{settings.TILE_JPEG_QUALITY}/{dz_level}/{tile_col}_{tile_row}"
        etag, content_type = f'"{prefix}-{address}"', "image/jpeg"
        if _is_current(headers, etag):
            return etag.encode(), content_type, None
        body = await _cached(tilecache.tile_key(slide.sha256, address), _render_tile, slide.path, dz_level,
                             tile_col, tile_row)
    elif match["thumbnail"] is not None:
        etag, content_type = f'"{prefix}-thumbnail"', "image/jpeg"
        if _is_current(headers, etag):
            return etag.encode(), content_type, None
        try:
            body = await asyncio.get_running_loop().run_in_executor(
                _render_pool, thumbnail_path(slide.sha256).read_bytes
            )
        except FileNotFoundError:
            raise Refused(404, "the thumbnail is missing; re-ingest the slide") from None
    elif match["associated"] is not None:
        name = match["associated"]
        if name not in slide.associated_images:
            available = ", ".join(slide.associated_images) or "none"
            raise Refused(404, f"no associated image {name!r} (this slide has: {available})")
        etag, content_type = f'"{prefix}-associated-{name}"', "image/jpeg"
        if _is_current(headers, etag):
            return etag.encode(), content_type, None
        body = await _cached(tilecache.tile_key(slide.sha256, f"associated/{name}"), _render_associated,
                             slide.path, name)
    else:
        etag, content_type = f'"{prefix}-dzi-{TILE_SIZE}-{OVERLAP}"', "application/xml"
        if _is_current(headers, etag):
            return etag.encode(), content_type, None
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="{FORMAT}" Overlap="{OVERLAP}" '
            f'TileSize="{TILE_SIZE}"><Size Height="{slide.height}" Width="{slide.width}"/></Image>'
        ).encode()
    return etag.encode(), content_type, body


def _is_current(headers: dict[bytes, bytes], etag: str) -> bool:
    offered = headers.get(b"if-none-match", b"").decode("latin-1")
    return etag in [tag.strip() for tag in offered.split(",")]


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], head: bool) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"x-content-type-options", b"nosniff")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


class TileServer:
    """ASGI wrapper: serves the tile paths itself and hands every other request to `app` (Django)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        match = ROUTE.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        head = scope["method"] == "HEAD"
        try:
            etag, content_type, body = await _answer(match, headers)
        except Refused as refused:
            extra = [(b"www-authenticate", b"Token")] if refused.status == 401 else []
            error = json.dumps({"error": refused.message}).encode()
            await _respond(send, refused.status, error, [(b"content-type", b"application/json"), *extra], head)
            return
        common = [(b"etag", etag), (b"cache-control", CACHE_CONTROL)]
        if body is None:
            await _respond(send, 304, b"", common, head)
        else:
            await _respond(send, 200, body, [(b"content-type", content_type.encode()), *common], head)
