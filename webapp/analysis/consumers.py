"""`/ws/analyses/<id>/[?after=<seq>]`: one analysis job's messages, from its log then live.

Server → client (JSON, one message per frame, `type` first; every logged message has `seq`, 1, 2, 3, …
without gaps over the job's life):
- `status` `{status, phase, progress}`: queued / running (phase extracting, selecting, generating) / final;
- `token` `{text, at}`: the next piece of the answer (`at`: when the worker produced it, unix seconds);
- `restart`: the job is being run again (its worker died): drop the text received so far;
- `done` `{status, text, regions, model, demo_weights}`: finished (succeeded, or cancelled with the text so far);
- `error` `{error}`: failed, with the reason.
A client that connects late, or reconnects with `?after=<last seq it has>`, gets the log after that point,
then live messages: in order, no gaps, no duplicates. The connection stays open after `done` until the
client closes it. Client → server: `{"type": "ping"}` → `{"type": "pong"}`.

Close codes: 4401 not authenticated, 4404 no such job or another department's. Origins are checked by
AllowedHostsOriginValidator (webapp/asgi.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.analysis import streaming
from webapp.analysis.models import AnalysisJob

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
# Live delivery may miss messages (the core layer drops them beyond a slow client's capacity; pub/sub loses
# what is published before a subscription is in place or while its connection is down), and a missed *last*
# message would leave no later one to reveal the gap: while the job has not ended, the log is read again
# whenever no message came for this long (seconds).
CATCH_UP_SECONDS = 1.0


@database_sync_to_async
def _visible_job(user, job_id: int) -> AnalysisJob | None:
    return AnalysisJob.objects.visible_to(user).filter(pk=job_id).first()


@database_sync_to_async
def _reloaded(job: AnalysisJob) -> AnalysisJob:
    job.refresh_from_db()
    return job


class AnalysisConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    job_id: int = 0
    stream_name: str = ""
    last_seq: int = 0
    ended = False
    _catch_up: asyncio.Task | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close code only reaches the client on an open connection.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.job_id = self.scope["url_route"]["kwargs"]["job_id"]
        job = await _visible_job(user, self.job_id)
        if job is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.stream_name = job.stream_name
        self._lock = asyncio.Lock()
        self._last_activity = time.monotonic()
        after = parse_qs(self.scope.get("query_string", b"").decode()).get("after", ["0"])[0]
        self.last_seq = int(after) if after.isdigit() else 0
        # Join before reading the log: a message logged after the read is then certain to arrive live
        # (live messages are handled only once connect() returns, and those already sent are skipped).
        self.group = streaming.group_name(self.job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        backlog = await sync_to_async(streaming.read_log, thread_sensitive=False)(self.stream_name, self.last_seq)
        for message in backlog:
            await self._forward(message)
        if not backlog and self.last_seq == 0:
            await self._without_log(job)
        if not self.ended:
            self._catch_up = asyncio.create_task(self._catch_up_loop())

    async def _catch_up_loop(self) -> None:
        while not self.ended:
            await asyncio.sleep(CATCH_UP_SECONDS)
            if time.monotonic() - self._last_activity < CATCH_UP_SECONDS:
                continue
            self._last_activity = time.monotonic()
            for message in await sync_to_async(streaming.read_log, thread_sensitive=False)(
                    self.stream_name, self.last_seq):
                await self._forward(message)

    async def _without_log(self, job: AnalysisJob) -> None:
        """No log (queued and untouched, or finished long ago and expired): the row's state, without seq."""
        if await sync_to_async(streaming.log_exists, thread_sensitive=False)(self.stream_name):
            return
        job = await _reloaded(job)
        await self.send_json({**job.status_message(), "seq": None})
        if job.is_finished:
            await self.send_json({**job.final_message(), "seq": None})
            self.ended = True

    async def disconnect(self, code: int) -> None:
        if self._catch_up is not None:
            self._catch_up.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "error": 'the only client message is {"type": "ping"}'})

    # Channel-layer events; the event type names the handler.

    async def analysis_messages(self, event: dict) -> None:
        for message in event["messages"]:
            await self._forward(message)

    async def _forward(self, message: dict) -> None:
        async with self._lock:  # the catch-up task and live messages take turns
            await self._forward_locked(message)
            self._last_activity = time.monotonic()
            if message["type"] in ("done", "error"):
                self.ended = True

    async def _forward_locked(self, message: dict) -> None:
        seq = message["seq"]
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            # A live message overtook some we never got (see CATCH_UP_SECONDS): fill the gap from the log.
            missing = await sync_to_async(streaming.read_log, thread_sensitive=False)(
                self.stream_name, self.last_seq, seq - 1)
            for earlier in missing:
                await self.send_json(earlier)
                self.last_seq = earlier["seq"]
            if self.last_seq != seq - 1:
                logger.warning("analysis %s: messages %s..%s missing from the log", self.job_id,
                               self.last_seq + 1, seq - 1)
        await self.send_json(message)
        self.last_seq = seq
