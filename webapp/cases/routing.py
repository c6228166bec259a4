from __future__ import annotations

from django.urls import path

from webapp.cases.consumers import WorklistConsumer

websocket_urlpatterns = [path("ws/worklist/", WorklistConsumer.as_asgi())]
