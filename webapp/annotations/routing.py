"""WebSocket routes of the annotations app (collected in webapp/routing.py)."""

from __future__ import annotations

from django.urls import path

from webapp.annotations.consumers import SlideConsumer

websocket_urlpatterns = [
    path("ws/slides/<int:slide_id>/", SlideConsumer.as_asgi()),
]
