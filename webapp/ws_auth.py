"""WebSocket authentication for scripts: `Authorization: Token <key>` on the handshake.

Browsers authenticate with their session cookie (Channels' AuthMiddlewareStack, outside this one).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware


@database_sync_to_async
def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return None
    return token.user if token.user.is_active else None


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, key = value.decode("latin-1").partition(" ")
                if scheme.lower() == "token" and key.strip():
                    user = await _user_for_token(key.strip())
                    if user is not None:
                        scope["user"] = user
                    else:
                        from django.contrib.auth.models import AnonymousUser

                        scope["user"] = AnonymousUser()
        return await super().__call__(scope, receive, send)
