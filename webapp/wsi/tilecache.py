"""Tile cache in Redis with a hard memory bound.

Tiles are immutable (keyed by the slide's sha256 and the tile address), so the cache never needs
invalidation, only eviction. Rather than rely on the server's `maxmemory` policy (the same Redis may
hold the Celery queues, which must never be evicted), the cache keeps its own account: an insertion-
ordered index and a byte counter, updated atomically by a Lua script that evicts the oldest tiles
until the total is within TILE_CACHE_MAX_BYTES.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

PREFIX = "pathdesk:tiles:"
INDEX_KEY = PREFIX + "index"
BYTES_KEY = PREFIX + "bytes"
SEQ_KEY = PREFIX + "seq"

_STORE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local size = string.len(ARGV[1])
local budget = tonumber(ARGV[2])
if size > budget then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), KEYS[1])
local total = redis.call('INCRBY', KEYS[3], size)
while total > budget do
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  if #oldest == 0 then break end
  local freed = redis.call('STRLEN', oldest[1])
  redis.call('DEL', oldest[1])
  total = redis.call('DECRBY', KEYS[3], freed)
end
return 1
"""

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aioredis.Redis, object]] = (
    weakref.WeakKeyDictionary()
)


def _client() -> tuple[aioredis.Redis, object]:
    # redis.asyncio connections belong to one event loop; the ASGI server has one per process.
    loop = asyncio.get_running_loop()
    entry = _clients.get(loop)
    if entry is None:
        client = aioredis.Redis.from_url(settings.TILE_CACHE_URL, socket_timeout=2, socket_connect_timeout=2)
        entry = (client, client.register_script(_STORE_SCRIPT))
        _clients[loop] = entry
    return entry


def tile_key(sha256: str, address: str) -> str:
    return f"{PREFIX}{sha256}:{address}"


async def get(key: str) -> bytes | None:
    """The cached bytes, or None on a miss. A Redis failure is logged and treated as a miss."""
    if settings.TILE_CACHE_MAX_BYTES <= 0:
        return None
    client, _ = _client()
    try:
        return await client.get(key)
    except RedisError as exc:
        logger.warning("tile cache unavailable (%s); serving without it", exc)
        return None


async def put(key: str, data: bytes) -> None:
    if settings.TILE_CACHE_MAX_BYTES <= 0:
        return
    client, store = _client()
    try:
        await store(keys=[key, INDEX_KEY, BYTES_KEY, SEQ_KEY], args=[data, settings.TILE_CACHE_MAX_BYTES])
    except RedisError as exc:
        logger.warning("tile cache unavailable (%s); tile not cached", exc)


async def usage() -> tuple[int, int]:
    """(bytes accounted, number of tiles) currently cached."""
    client, _ = _client()
    used = await client.get(BYTES_KEY)
    return int(used or 0), int(await client.zcard(INDEX_KEY))
