"""WebSocket routes of every app, collected in one place (each app owns its consumers)."""

from __future__ import annotations

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
