"""WebSocket routes of the analysis app (collected in webapp/routing.py)."""

from __future__ import annotations

from django.urls import path

from webapp.analysis.consumers import AnalysisConsumer

websocket_urlpatterns = [path("ws/analyses/<int:job_id>/", AnalysisConsumer.as_asgi())]
