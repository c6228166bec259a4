"""A job's messages: a replayable log in a Redis stream, and live delivery to channel-layer group `analysis.<id>`.

Every message a watcher can receive (`status`, `token`, `restart`, `done`, `error`) is first appended to the
job's log, where it gets its sequence number `seq` (1, 2, 3, … without gaps over the job's whole life,
across re-runs), then sent to the group. The stream entry id is `0-<seq>`, so "everything after n" is one
XRANGE. A watcher that connects late reads the log and then forwards live messages whose `seq` it has not
sent yet (see consumers.py): in order, no gaps, no duplicates. The log and the cancel flag are keyed by
`AnalysisJob.stream_name` (id + a random key of the row), so a recreated database reusing ids never meets
an old job's log; the lease and the group are keyed by id.

Writers and fencing. While a job runs, one worker holds its *lease* (a Redis key with a short TTL that the
worker renews several times per `ANALYSIS_LEASE_SECONDS`). Appends check the lease inside the same Lua
script, so a worker that lost its lease (paused past the TTL while another worker re-ran the job) cannot
write into the log any more. The web process appends without a lease only for jobs that never started
(cancelled while queued).

Batching. `JobStream` sends from one background event loop per worker process, so the generating thread
never waits on Redis. Pieces that arrive while a send is in flight are merged into one `token` message of
the next send: an idle stream sends each piece at once (lowest latency); a busy one sends bigger batches
(throughput), at most `ANALYSIS_STREAM_BATCH` messages per send, and no more often than every
`ANALYSIS_STREAM_FLUSH_MS` (0 = as soon as the previous send is done).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterable

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger(__name__)

# KEYS: log, lease. ARGV: owner ("" = no lease check), lease ms, log TTL s, then one JSON payload per message.
# Returns the seq of the first appended message, or an error reply when the lease is not the owner's.
_APPEND = """
if ARGV[1] ~= '' then
    if redis.call('GET', KEYS[2]) ~= ARGV[1] then
        return redis.error_reply('LEASE lost')
    end
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 0
if #last > 0 then
    seq = tonumber(string.match(last[1][1], '-(%d+)$'))
end
local first = seq + 1
for i = 4, #ARGV do
    seq = seq + 1
    redis.call('XADD', KEYS[1], '0-' .. seq, 'm', ARGV[i])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return first
"""
# KEYS: lease, cancel flag. ARGV: owner, lease ms. Returns {lease still held (0/1), cancel requested (0/1)}.
_RENEW = """
local held = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    held = 1
end
return {held, redis.call('EXISTS', KEYS[2])}
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """Another worker took over the job: this one must stop writing."""


def group_name(job_id: int) -> str:
    return f"analysis.{job_id}"


def log_key(stream_name: str) -> str:
    """`stream_name`: AnalysisJob.stream_name (id and a random key of the row)."""
    return f"pathdesk:analysis:{stream_name}:log"


def lease_key(job_id: int) -> str:
    return f"pathdesk:analysis:{job_id}:lease"


def cancel_key(stream_name: str) -> str:
    return f"pathdesk:analysis:{stream_name}:cancel"


_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """This process's Redis client (a fresh one after a fork)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients.clear()
        _clients[pid] = redis.Redis.from_url(settings.REDIS_URL)
    return _clients[pid]


def _lease_ms() -> int:
    return int(settings.ANALYSIS_LEASE_SECONDS * 1000)


def with_seq(seq: int, payload: dict) -> dict:
    """The wire message: `type` and `seq` first, then the payload's other fields."""
    return {"type": payload["type"], "seq": seq, **{k: v for k, v in payload.items() if k != "type"}}


def _encode(messages: Iterable[dict]) -> list[str]:
    return [json.dumps(m, separators=(",", ":"), ensure_ascii=False) for m in messages]


# -- lease and cancel flag ---------------------------------------------------------------------------------

def acquire_lease(job_id: int, owner: str) -> bool:
    """Take the job's lease unless a live worker holds it."""
    return bool(client().set(lease_key(job_id), owner, nx=True, px=_lease_ms()))


def renew_lease(job_id: int, owner: str, stream_name: str | None) -> tuple[bool, bool]:
    """Extend the lease; returns (still held, cancel requested). Cancel is unknown (False) without the stream."""
    cancel = cancel_key(stream_name) if stream_name else f"{lease_key(job_id)}:no-stream-yet"
    held, cancel = client().eval(_RENEW, 2, lease_key(job_id), cancel, owner, _lease_ms())
    return bool(held), bool(cancel)


def release_lease(job_id: int, owner: str) -> None:
    client().eval(_RELEASE, 1, lease_key(job_id), owner)


def request_cancel(stream_name: str) -> None:
    client().set(cancel_key(stream_name), "1", ex=settings.ANALYSIS_LOG_TTL)


# -- the log -----------------------------------------------------------------------------------------------

def append(job_id: int, stream_name: str, payloads: list[dict], *, owner: str = "") -> list[dict]:
    """Append messages to the log and send them to the group (sync; the web process's path).

    Returns the wire messages (with `seq`). Raises LeaseLost when `owner` no longer holds the lease.
    """
    try:
        first = client().eval(_APPEND, 2, log_key(stream_name), lease_key(job_id), owner, _lease_ms(),
                              settings.ANALYSIS_LOG_TTL, *_encode(payloads))
    except redis.ResponseError as exc:
        if "LEASE" in str(exc):
            raise LeaseLost(str(exc)) from exc
        raise
    messages = [with_seq(first + i, p) for i, p in enumerate(payloads)]
    try:
        async_to_sync(get_channel_layer().group_send)(
            group_name(job_id), {"type": "analysis.messages", "messages": messages})
    except Exception:  # noqa: BLE001  (the log has them: watchers catch up from it)
        logger.exception("analysis %s: could not send live messages", job_id)
    return messages


def read_log(stream_name: str, after: int = 0, until: int | None = None) -> list[dict]:
    """Logged messages with `after < seq <= until` (all after `after` when until is None), in order."""
    end = "+" if until is None else f"0-{until}"
    entries = client().xrange(log_key(stream_name), f"({'0-' + str(after)}" if after else "-", end)
    out = []
    for entry_id, fields in entries:
        seq = int(entry_id.decode().split("-", 1)[1])
        out.append(with_seq(seq, json.loads(fields[b"m"])))
    return out


def log_exists(stream_name: str) -> bool:
    return bool(client().exists(log_key(stream_name)))


# -- the worker's sender -----------------------------------------------------------------------------------

class _Loop:
    """One event loop per process, on a daemon thread: where JobStreams talk to Redis."""

    _instance: _Loop | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="analysis-stream")
        self.thread.start()
        self.redis = None
        self.append_script = None
        self.pid = os.getpid()

    @classmethod
    def get(cls) -> _Loop:
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = cls()
            return cls._instance

    def aredis(self):
        # Created lazily on the loop's own thread (redis.asyncio binds to the running loop).
        if self.redis is None:
            import redis.asyncio as aioredis

            self.redis = aioredis.Redis.from_url(settings.REDIS_URL)
            self.append_script = self.redis.register_script(_APPEND)  # EVALSHA, loaded again if Redis forgot it
        return self.redis


class JobStream:
    """Sends one job's messages in order, merging token pieces that queue up behind a send in flight.

    `send`/`token` never block; `close` waits until everything queued is in the log and sent. `lost` turns
    true when the lease is gone (every later message is dropped) and `failed` when Redis refused a send.
    """

    def __init__(self, job_id: int, stream_name: str, owner: str) -> None:
        self.job_id, self.stream_name, self.owner = job_id, stream_name, owner
        self.group = group_name(job_id)
        self._loop = _Loop.get()
        self._lock = threading.Lock()
        self._pending: list[dict] = []
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()
        self._last_send = 0.0
        self.lost = False
        self.failed: Exception | None = None
        self.sent_messages = 0

    def send(self, payload: dict) -> None:
        with self._lock:
            if self.lost:
                return
            self._pending.append(payload)
            if not self._busy:
                self._busy = True
                self._idle.clear()
                self._loop.loop.call_soon_threadsafe(self._start)

    def token(self, text: str, at: float | None = None) -> None:
        """A generated piece; `at` = when it was produced (unix seconds), carried to clients."""
        self.send({"type": "token", "text": text, "at": time.time() if at is None else at})

    def close(self, timeout: float = 30.0) -> bool:
        """Wait until every queued message is sent; False on timeout."""
        return self._idle.wait(timeout)

    def _start(self) -> None:
        self._loop.loop.create_task(self._drain())

    async def _drain(self) -> None:
        batch_limit = settings.ANALYSIS_STREAM_BATCH
        min_interval = settings.ANALYSIS_STREAM_FLUSH_MS / 1000
        while True:
            wait = self._last_send + min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            with self._lock:
                if self.lost or not self._pending:
                    self._pending = []
                    self._busy = False
                    self._idle.set()
                    return
                merged = _merge_tokens(self._pending)
                payloads, self._pending = merged[:batch_limit], merged[batch_limit:]
            self._last_send = time.monotonic()
            try:
                await self._send(payloads)
            except LeaseLost:
                logger.warning("analysis %s: lease lost by %s; it stops streaming", self.job_id, self.owner)
                self.lost = True
            except Exception as exc:  # noqa: BLE001  (reported to the runner, which fails the job)
                logger.exception("analysis %s: could not stream", self.job_id)
                self.failed = exc

    async def _send(self, payloads: list[dict]) -> None:
        self._loop.aredis()
        try:
            first = await self._loop.append_script(
                keys=[log_key(self.stream_name), lease_key(self.job_id)],
                args=[self.owner, _lease_ms(), settings.ANALYSIS_LOG_TTL, *_encode(payloads)])
        except redis.ResponseError as exc:
            if "LEASE" in str(exc):
                raise LeaseLost(str(exc)) from exc
            raise
        messages = [with_seq(first + i, p) for i, p in enumerate(payloads)]
        self.sent_messages += len(messages)
        await get_channel_layer().group_send(self.group, {"type": "analysis.messages", "messages": messages})


def _merge_tokens(payloads: list[dict]) -> list[dict]:
    """Consecutive token messages become one (text joined, `at` of the first piece: the oldest)."""
    out: list[dict] = []
    for payload in payloads:
        if payload["type"] == "token" and out and out[-1]["type"] == "token":
            out[-1] = {**out[-1], "text": out[-1]["text"] + payload["text"]}
        else:
            out.append(payload)
    return out
