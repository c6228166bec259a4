"""WebSocket routes of every app, collected in one place (each app owns its consumers)."""

from __future__ import annotations

from django.urls import URLPattern

from webapp.analysis.routing import websocket_urlpatterns as analysis_websockets
from webapp.annotations.routing import websocket_urlpatterns as annotations_websockets
from webapp.cases.routing import websocket_urlpatterns as cases_websockets

websocket_urlpatterns: list[URLPattern] = [*cases_websockets, *annotations_websockets, *analysis_websockets]
