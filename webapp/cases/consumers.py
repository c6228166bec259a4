"""`WS /ws/worklist/[?department=<id>]`: the live worklist of the user's departments (all, for admins).

Close codes: 4401 not authenticated, 4404 a department the user may not see (or that does not exist).
After joining, the server sends `{"event": "worklist.ready", "departments": [ids] | "all"}`; then one
message per case change (see webapp/cases/events.py).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.cases.events import ALL_DEPARTMENTS_GROUP, department_group


@database_sync_to_async
def _visible_departments(user) -> tuple[bool, list[int]]:
    return user.is_admin, user.visible_department_ids()


class WorklistConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.joined: list[str] = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(4401)
            return
        is_admin, visible = await _visible_departments(user)
        wanted = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("department")
        if wanted:
            if not wanted[0].isdigit() or int(wanted[0]) not in visible:
                await self._refuse(4404)
                return
            departments: list[int] | str = [int(wanted[0])]
            self.joined = [department_group(int(wanted[0]))]
        elif is_admin:
            departments = "all"
            self.joined = [ALL_DEPARTMENTS_GROUP]
        else:
            departments = visible
            self.joined = [department_group(pk) for pk in visible]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"event": "worklist.ready", "departments": departments})

    async def _refuse(self, code: int) -> None:
        # Accepted first: a close before the handshake completes reaches the client as HTTP 403, without the code.
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code):
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The worklist is server → client only; anything the client sends is ignored.
        return

    async def worklist_event(self, message):
        await self.send_json({"event": message["event"], "case": message["case"]})
