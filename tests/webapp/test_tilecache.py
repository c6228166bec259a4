"""The Redis tile cache keeps to its byte budget and never touches other keys."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import redis

from webapp.wsi import tilecache


def run(coroutine):
    """Run a coroutine on a fresh event loop in its own thread (Playwright may own this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _reset(client: redis.Redis) -> None:
    for key in client.scan_iter(tilecache.PREFIX + "*"):
        client.delete(key)


def test_it_evicts_the_oldest_tiles_to_stay_within_budget(settings):
    settings.TILE_CACHE_MAX_BYTES = 5_000
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    _reset(client)
    client.set("unrelated-queue-key", b"x" * 10_000)

    async def fill() -> tuple[list[bytes | None], tuple[int, int]]:
        for i in range(12):
            await tilecache.put(tilecache.tile_key("a" * 64, f"tile-{i}"), bytes([i]) * 1_000)
        got = [await tilecache.get(tilecache.tile_key("a" * 64, f"tile-{i}")) for i in range(12)]
        return got, await tilecache.usage()

    got, (used, count) = run(fill())
    assert used <= 5_000
    assert count == 5
    assert got[:7] == [None] * 7
    assert got[7:] == [bytes([i]) * 1_000 for i in range(7, 12)]
    assert client.get("unrelated-queue-key") == b"x" * 10_000
    client.delete("unrelated-queue-key")
    _reset(client)


def test_an_existing_tile_is_not_counted_twice(settings):
    settings.TILE_CACHE_MAX_BYTES = 10_000
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    _reset(client)

    async def twice() -> tuple[int, int]:
        key = tilecache.tile_key("b" * 64, "t")
        await tilecache.put(key, b"y" * 100)
        await tilecache.put(key, b"y" * 100)
        return await tilecache.usage()

    assert run(twice()) == (100, 1)
    _reset(client)


def test_a_disabled_cache_stores_nothing(settings):
    settings.TILE_CACHE_MAX_BYTES = 0

    async def roundtrip() -> bytes | None:
        key = tilecache.tile_key("c" * 64, "t")
        await tilecache.put(key, b"z")
        return await tilecache.get(key)

    assert run(roundtrip()) is None
