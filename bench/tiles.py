"""Tile serving benchmark (issue 2). Run by `make bench`; prints ratios measured side by side in one run.

On a generated 32k×32k JPEG-tiled slide (native levels at downsample 1, 4, 16, 64):
1. uncached DeepZoom tiles through the full HTTP stack (uvicorn, auth, Django, Redis put) ÷ raw
   `openslide.deepzoom.DeepZoomGenerator.get_tile` + JPEG encode in-process; same tiles, same
   concurrency (target ≥ 0.8);
2. cached tiles: server-side latency p50/p95 from the Server-Timing header (target p95 ≤ 5 ms);
3. DeepZoom levels between native pyramid levels ÷ native levels, per tile, through HTTP (target ≤ 1.5),
   next to the same ratio for stock DeepZoomGenerator.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import django_env, ingest_now, make_user_and_case, percentile, uvicorn  # noqa: E402
from bench.deepzoom import DOWNSAMPLES, bench_slide  # noqa: E402
from webapp.devservices import free_port  # noqa: E402

SIZE = 32768
TILE = 254
OVERLAP = 1
QUALITY = 80


def pick_tiles(count_per_level: int, seed: int = 7) -> tuple[list[tuple[int, int, int]], set[int]]:
    """Tiles from the three finest native DeepZoom levels and the in-between levels below each."""
    import math

    rng = random.Random(seed)
    top = math.ceil(math.log2(SIZE))
    native = {top - round(math.log2(ds)) for ds in DOWNSAMPLES}
    levels = [top, top - 1, top - 2, top - 3, top - 4, top - 5]
    tiles = []
    for level in levels:
        side = math.ceil(SIZE / 2 ** (top - level))
        n = math.ceil(side / TILE)
        # The middle half of the slide: mostly tissue, like a person's viewport.
        lo, hi = n // 4, max(n // 4 + 1, 3 * n // 4)
        cells = [(c, r) for c in range(lo, hi) for r in range(lo, hi)]
        for col, row in rng.sample(cells, min(count_per_level, len(cells))):
            tiles.append((level, col, row))
    rng.shuffle(tiles)
    return tiles, native


def raw_stock(path: Path, tiles, workers: int) -> tuple[float, dict[int, float]]:
    import openslide
    from openslide.deepzoom import DeepZoomGenerator

    handle = openslide.OpenSlide(str(path))
    zoom = DeepZoomGenerator(handle, tile_size=TILE, overlap=OVERLAP, limit_bounds=False)
    per_level: dict[int, list[float]] = {}

    def one(address):
        level, col, row = address
        started = time.perf_counter()
        buffer = io.BytesIO()
        zoom.get_tile(level, (col, row)).save(buffer, "JPEG", quality=QUALITY)
        per_level.setdefault(level, []).append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, tiles))
    elapsed = time.perf_counter() - started
    handle.close()
    return len(tiles) / elapsed, {level: statistics.mean(v) for level, v in per_level.items()}


def raw_ours(path: Path, tiles, workers: int) -> float:
    """The same tiles through slides.DeepZoom (our renderer) in this process: the stack's own overhead."""
    import slides

    cache = slides.SlideCache(max_open=2)

    def one(address):
        level, col, row = address
        with cache.get(path) as wsi:
            slides.DeepZoom(wsi, tile_size=TILE, overlap=OVERLAP).get_tile_jpeg(level, col, row, quality=QUALITY)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, tiles))
    elapsed = time.perf_counter() - started
    cache.clear()
    return len(tiles) / elapsed


def over_http(url: str, token: str, slide_id: int, tiles, workers: int):
    per_level: dict[int, list[float]] = {}
    server_ms: list[float] = []
    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}) for _ in range(workers)]

    def one(args):
        index, (level, col, row) = args
        client = clients[index % workers]
        started = time.perf_counter()
        response = client.get(f"/api/slides/{slide_id}/dzi_files/{level}/{col}_{row}.jpeg")
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"tile {level}/{col}_{row}: {response.status_code} {response.text[:200]}")
        per_level.setdefault(level, []).append(elapsed)
        server_ms.append(float(response.headers["server-timing"].split("dur=")[1]))

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(tiles)))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return len(tiles) / elapsed, {level: statistics.mean(v) for level, v in per_level.items()}, server_ms


def level_ratio(per_level: dict[int, float], native: set[int]) -> float:
    nat = [v for level, v in per_level.items() if level in native]
    mid = [v for level, v in per_level.items() if level not in native]
    return statistics.mean(mid) / statistics.mean(nat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles-per-level", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="concurrent renders (raw) / requests (HTTP)")
    args = parser.parse_args()

    path = bench_slide()
    tiles, native = pick_tiles(args.tiles_per_level)
    with django_env("pathdesk_bench_tiles", TILE_CACHE_MAX_BYTES=str(1024**3), TILE_WORKERS=str(args.workers)) as env:
        from webapp.wsi import tilecache  # noqa: F401  (settings loaded)

        token, case = make_user_and_case()
        slide = ingest_now(case, path)
        import redis

        client = redis.Redis.from_url(env["REDIS_URL"])
        for key in client.scan_iter("pathdesk:tiles:*"):
            client.delete(key)
        with uvicorn(env, free_port()) as url:
            # Warm-up outside the measurement: open handles, imports, DB connections (tiles not in the set).
            over_http(url, token, slide.pk, [(8, 0, 0), (9, 0, 0), (9, 1, 1)], 1)
            ours_rate = raw_ours(path, tiles, args.workers)
            raw_rate, raw_levels = raw_stock(path, tiles, args.workers)
            cold_rate, cold_levels, cold_ms = over_http(url, token, slide.pk, tiles, args.workers)
            raw_rate_2, raw_levels_2 = raw_stock(path, list(reversed(tiles)), args.workers)
            warm_rate, _, warm_ms = over_http(url, token, slide.pk, tiles, args.workers)
            sequential_rate, _, sequential_ms = over_http(url, token, slide.pk, tiles, 1)

    raw = (raw_rate + raw_rate_2) / 2
    print(f"\n== bench/tiles.py — {len(tiles)} tiles, {args.workers} concurrent, slide {SIZE}×{SIZE} ==")
    print(f"raw DeepZoomGenerator.get_tile + JPEG (in-process): {raw:8.1f} tiles/s  (runs: {raw_rate:.1f}, {raw_rate_2:.1f})")
    print(f"uncached tiles over HTTP (full stack):              {cold_rate:8.1f} tiles/s")
    print(f"  ratio HTTP uncached ÷ raw in-process:             {cold_rate / raw:8.2f}   (target ≥ 0.8)")
    print(f"raw slides.DeepZoom.get_tile_jpeg (ours, in-process, cold): {ours_rate:8.1f} tiles/s")
    print(f"  ratio HTTP uncached ÷ ours in-process (stack overhead): {cold_rate / ours_rate:8.2f}")
    print(f"cached tiles over HTTP:                             {warm_rate:8.1f} tiles/s")
    print(f"  cached server-side latency, {args.workers} concurrent: p50 {percentile(warm_ms, 50):.2f} ms, "
          f"p95 {percentile(warm_ms, 95):.2f} ms")
    print(f"  cached server-side latency, sequential:  p50 {percentile(sequential_ms, 50):.2f} ms, "
          f"p95 {percentile(sequential_ms, 95):.2f} ms   (target p95 ≤ 5 ms)")
    print(f"uncached server-side latency: p50 {percentile(cold_ms, 50):.2f} ms, p95 {percentile(cold_ms, 95):.2f} ms")
    print(f"in-between ÷ native levels, per tile, ours over HTTP: {level_ratio(cold_levels, native):.2f}   (target ≤ 1.5)")
    print(f"in-between ÷ native levels, per tile, stock OpenSlide: {level_ratio(raw_levels, native):.2f}")


if __name__ == "__main__":
    main()
