"""OpenAPI entries for the tile server's paths (served by webapp/wsi/tiles.py, outside DRF)."""

from __future__ import annotations

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_ERRORS = {
    "401": {"description": "not authenticated"},
    "404": {"description": "no such slide (or not visible to you), or no such tile"},
    "409": {"description": "the slide is pending or failed; `error` says which"},
}


def _get(operation_id: str, summary: str, content_type: str, params: list[dict]) -> dict:
    return {
        "get": {
            "operationId": operation_id,
            "tags": ["tiles"],
            "summary": summary,
            "parameters": [_ID, *params],
            "security": [{"tokenAuth": []}, {"cookieAuth": []}],
            "responses": {
                "200": {"description": summary, "content": {content_type: {"schema": {"type": "string", "format": "binary"}}}},
                "304": {"description": "not modified (If-None-Match matched the ETag)"},
                **_ERRORS,
            },
        }
    }


def _int(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}


def add_tile_paths(result: dict, generator, request, public) -> dict:
    paths = result.setdefault("paths", {})
    paths["/api/slides/{id}/dzi.dzi"] = _get("slides_dzi", "DeepZoom descriptor (254 px tiles, overlap 1)", "application/xml", [])
    paths["/api/slides/{id}/dzi_files/{level}/{col}_{row}.jpeg"] = _get(
        "slides_dzi_tile", "One DeepZoom tile", "image/jpeg", [_int("level"), _int("col"), _int("row")]
    )
    paths["/api/slides/{id}/thumbnail.jpeg"] = _get("slides_thumbnail", "Slide thumbnail (≤ 1024 px)", "image/jpeg", [])
    paths["/api/slides/{id}/associated/{name}.jpeg"] = _get(
        "slides_associated_image", "Associated image (label, macro, …)", "image/jpeg",
        [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
    )
    return result
