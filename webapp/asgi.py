"""ASGI entry point: HTTP through Django, WebSockets through Channels (see README)."""

from __future__ import annotations

import gc
import os
import re

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from webapp.asgi_middleware import BodySizeLimit, ServerTiming  # noqa: E402
from webapp.routing import websocket_urlpatterns  # noqa: E402
from webapp.ws_auth import TokenAuthMiddleware  # noqa: E402
from webapp.wsi.tiles import TileServer  # noqa: E402

_ANNOTATION_IMPORT = re.compile(r"^/api/slides/\d+/annotations/import/?$")


def _body_limit(path: str) -> int:
    if path.rstrip("/") == "/api/slides":
        # Multipart framing and the form fields add a little to the file itself.
        return settings.SLIDE_UPLOAD_MAX_BYTES + 1024 * 1024
    if _ANNOTATION_IMPORT.match(path):
        return settings.ANNOTATION_IMPORT_MAX_BYTES
    return settings.REQUEST_BODY_MAX_BYTES


application = ProtocolTypeRouter(
    {
        "http": ServerTiming(TileServer(BodySizeLimit(django_application, _body_limit))),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# Everything loaded so far (Django, the URL conf, DRF, Channels) lives as long as the process. Moving it
# out of the collector's reach keeps full (generation 2) collections short: without this, each one walks
# the whole start-up object graph and stalls every websocket stream by 50-100 ms (bench/stream.py, 2c).
gc.freeze()
