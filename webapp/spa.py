"""Serves the built frontend (frontend/dist): index.html for the app's routes, hashed assets under /assets/."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from django.views.static import serve


@require_safe
def index(request: HttpRequest, path: str = "") -> HttpResponse:
    page = settings.FRONTEND_DIST / "index.html"
    if not page.is_file():
        return HttpResponse(
            "The frontend is not built. Run `make setup` (or `cd frontend && npm ci && npm run build`).",
            status=503,
            content_type="text/plain",
        )
    response = FileResponse(page.open("rb"), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


@require_safe
def asset(request: HttpRequest, path: str) -> HttpResponse:
    # django.views.static.serve refuses paths that leave the folder.
    response = serve(request, path, document_root=settings.FRONTEND_DIST / "assets")
    # File names carry a content hash.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
