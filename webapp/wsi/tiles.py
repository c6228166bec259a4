"""DeepZoom, thumbnail and associated-image endpoints.

These are plain async Django views rather than DRF views: they are the hot path of the viewer
(hundreds of requests per screen). Authentication and the permission query run in a small thread
pool; pixels are rendered in another, so cached tiles are never queued behind renders.
"""

from __future__ import annotations

import asyncio
import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

import slides
from webapp.wsi import storage, tilecache
from webapp.wsi.ingest import thumbnail_path
from webapp.wsi.models import Slide, SlideStatus

TILE_SIZE = 254
OVERLAP = 1
FORMAT = "jpeg"
CACHE_CONTROL = "private, max-age=31536000, immutable"

_db_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tiles-db")
_render_pool = ThreadPoolExecutor(max_workers=settings.TILE_WORKERS, thread_name_prefix="tiles-render")
_handles = slides.SlideCache(max_open=settings.SLIDE_HANDLE_CACHE_SIZE)


class Refused(Exception):
    """An answer other than the image: carries the JSON error response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = JsonResponse({"error": message}, status=status)
        if status == 401:
            self.response["WWW-Authenticate"] = "Token"


@dataclass(frozen=True)
class ReadySlide:
    id: int
    sha256: str
    path: Path
    width: int
    height: int
    associated_images: tuple[str, ...]


def _user(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "token" or not key.strip():
            raise Refused(401, "unsupported Authorization header; use 'Token <key>'")
        try:
            user, _ = TokenAuthentication().authenticate_credentials(key.strip())
        except AuthenticationFailed as exc:
            raise Refused(401, str(exc.detail)) from None
        return user
    user = request.user
    if not user.is_authenticated:
        raise Refused(401, "authentication required")
    return user


def _resolve(request: HttpRequest, slide_id: int) -> ReadySlide:
    """Authenticate, check the user may see the slide (404 otherwise) and that it is ready (409)."""
    close_old_connections()
    user = _user(request)
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


async def _ready_slide(request: HttpRequest, slide_id: int) -> ReadySlide:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_db_pool, _resolve, request, slide_id)


def _image_response(request: HttpRequest, data: bytes | None, etag: str, content_type: str) -> HttpResponse:
    response = HttpResponse(data or b"", content_type=content_type, status=200 if data is not None else 304)
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _not_modified(request: HttpRequest, etag: str) -> bool:
    return etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]


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
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(_render_pool, func, *args)
    except slides.TileNotFound as exc:
        raise Refused(404, str(exc)) from None
    except slides.SlideError as exc:
        raise Refused(422, f"the slide could not be read here: {exc}") from None


async def dzi(request: HttpRequest, slide_id: int) -> HttpResponse:
    try:
        slide = await _ready_slide(request, slide_id)
    except Refused as refused:
        return refused.response
    etag = f'"{slide.sha256[:32]}-dzi-{TILE_SIZE}-{OVERLAP}"'
    if _not_modified(request, etag):
        return _image_response(request, None, etag, "application/xml")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="{FORMAT}" '
        f'Overlap="{OVERLAP}" TileSize="{TILE_SIZE}"><Size Height="{slide.height}" Width="{slide.width}"/></Image>'
    )
    return _image_response(request, xml.encode(), etag, "application/xml")


async def tile(request: HttpRequest, slide_id: int, dz_level: int, tile_col: int, tile_row: int) -> HttpResponse:
    try:
        slide = await _ready_slide(request, slide_id)
        _check_address(slide, dz_level, tile_col, tile_row)
        address = f"{TILE_SIZE}-{OVERLAP}-q{settings.TILE_JPEG_QUALITY}/{dz_level}/{tile_col}_{tile_row}"
        etag = f'"{slide.sha256[:32]}-{address}"'
        if _not_modified(request, etag):
            return _image_response(request, None, etag, "image/jpeg")
        key = tilecache.tile_key(slide.sha256, address)
        data = await tilecache.get(key)
        if data is None:
            data = await _render(_render_tile, slide.path, dz_level, tile_col, tile_row)
            await tilecache.put(key, data)
    except Refused as refused:
        return refused.response
    return _image_response(request, data, etag, "image/jpeg")


async def thumbnail(request: HttpRequest, slide_id: int) -> HttpResponse:
    try:
        slide = await _ready_slide(request, slide_id)
    except Refused as refused:
        return refused.response
    etag = f'"{slide.sha256[:32]}-thumbnail"'
    if _not_modified(request, etag):
        return _image_response(request, None, etag, "image/jpeg")
    loop = asyncio.get_running_loop()
    try:
        data = await loop.run_in_executor(_render_pool, thumbnail_path(slide.sha256).read_bytes)
    except FileNotFoundError:
        return JsonResponse({"error": "the thumbnail is missing; re-ingest the slide"}, status=404)
    return _image_response(request, data, etag, "image/jpeg")


async def associated(request: HttpRequest, slide_id: int, name: str) -> HttpResponse:
    try:
        slide = await _ready_slide(request, slide_id)
        if name not in slide.associated_images:
            available = ", ".join(slide.associated_images) or "none"
            raise Refused(404, f"no associated image {name!r} (this slide has: {available})")
        etag = f'"{slide.sha256[:32]}-associated-{name}"'
        if _not_modified(request, etag):
            return _image_response(request, None, etag, "image/jpeg")
        key = tilecache.tile_key(slide.sha256, f"associated/{name}")
        data = await tilecache.get(key)
        if data is None:
            data = await _render(_render_associated, slide.path, name)
            await tilecache.put(key, data)
    except Refused as refused:
        return refused.response
    return _image_response(request, data, etag, "image/jpeg")
