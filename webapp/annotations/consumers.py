"""`/ws/slides/<id>/`: annotation changes and presence for everyone viewing a slide.

Server → client messages (JSON, `type` first):
- `annotation.created` / `annotation.updated` / `annotation.deleted` `{annotation}`: after commit;
- `annotation.imported` `{slide, count}`: a file was imported, reload the viewport;
- `viewer.joined` / `viewer.left` `{viewer: {id, user, username}}`: on connect the newcomer also gets
  one `viewer.joined` per viewer already there;
- `viewer.viewport` `{viewer, bbox}`: another viewer's viewport, level-0 px;
- `error` `{error}`.
Client → server: `{"type": "viewport", "bbox": [x0, y0, x1, y1]}`.

Close codes: 4401 not authenticated, 4404 no such slide or another department's.
"""

from __future__ import annotations

import math
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.annotations.events import slide_group
from webapp.wsi.models import Slide

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _can_view(user, slide_id: int) -> bool:
    return Slide.objects.visible_to(user).filter(pk=slide_id).exists()


class SlideConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close code only reaches the client on an open connection.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        slide_id = self.scope["url_route"]["kwargs"]["slide_id"]
        if not await _can_view(user, slide_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.viewer = {"id": uuid.uuid4().hex[:12], "user": user.pk, "username": user.username}
        self.group = slide_group(slide_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_send(
            self.group, {"type": "viewer.joined", "viewer": self.viewer, "reply_to": self.channel_name}
        )

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_send(self.group, {"type": "viewer.left", "viewer": self.viewer})

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict) or content.get("type") != "viewport":
            await self.send_json({"type": "error", "error": "expected {\"type\": \"viewport\", \"bbox\": [x0, y0, x1, y1]}"})
            return
        bbox = content.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(type(v) in (int, float) and math.isfinite(v) for v in bbox)):
            await self.send_json({"type": "error", "error": "bbox must be four finite numbers, level-0 px"})
            return
        await self.channel_layer.group_send(self.group, {"type": "viewer.viewport", "viewer": self.viewer, "bbox": bbox})

    # Channel-layer events; the event type names the handler.

    async def annotation_created(self, event: dict) -> None:
        await self.send_json(event)

    async def annotation_updated(self, event: dict) -> None:
        await self.send_json(event)

    async def annotation_deleted(self, event: dict) -> None:
        await self.send_json(event)

    async def annotation_imported(self, event: dict) -> None:
        await self.send_json(event)

    async def viewer_joined(self, event: dict) -> None:
        if event["reply_to"] == self.channel_name:
            return
        await self.send_json({"type": "viewer.joined", "viewer": event["viewer"]})
        # Tell the newcomer who is already here.
        await self.channel_layer.send(event["reply_to"], {"type": "viewer.present", "viewer": self.viewer})

    async def viewer_present(self, event: dict) -> None:
        await self.send_json({"type": "viewer.joined", "viewer": event["viewer"]})

    async def viewer_left(self, event: dict) -> None:
        if event["viewer"]["id"] != self.viewer["id"]:
            await self.send_json(event)

    async def viewer_viewport(self, event: dict) -> None:
        if event["viewer"]["id"] != self.viewer["id"]:
            await self.send_json(event)
