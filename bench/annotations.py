"""Annotation scale benchmark (issue 5). Run by `make bench`; never part of the tests.

On one 100,000 × 80,000 px slide:
1. bulk import of 100,000 polygons (12-vertex cell/gland outlines, one QuPath GeoJSON file) through
   `POST /api/slides/{id}/annotations/import` — wall time of the request (target ≤ 30 s), with the
   in-process time to parse and check the file alone beside it;
2. viewport queries through `GET /api/slides/{id}/annotations/?bbox=…` for a 1920×1080 screen at
   downsample 1 and 4, random positions: client latency and server time (Server-Timing) p50/p95
   (target p95 ≤ 100 ms);
3. the same viewport queries in-process, extent-class index ranges ÷ a plain bounding-box filter on
   the same columns, side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import django_env, make_user_and_case, percentile, uvicorn  # noqa: E402
from webapp.devservices import free_port  # noqa: E402

WIDTH, HEIGHT = 100_000, 80_000
SCREEN = (1920, 1080)


def polygons(count: int, seed: int = 11) -> bytes:
    """`count` closed 12-vertex outlines, radius 20–150 px, spread over the slide, as a QuPath export."""
    rng = random.Random(seed)
    features = []
    for _ in range(count):
        cx, cy = rng.uniform(200, WIDTH - 200), rng.uniform(200, HEIGHT - 200)
        radius = rng.uniform(20, 150)
        ring = []
        for k in range(12):
            angle = 2 * math.pi * k / 12
            r = radius * rng.uniform(0.75, 1.0)
            ring.append([round(cx + r * math.cos(angle), 1), round(cy + r * math.sin(angle), 1)])
        ring.append(ring[0])
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}},
        })
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def viewports(count: int, downsample: int, seed: int) -> list[tuple[float, float, float, float]]:
    rng = random.Random(seed)
    w, h = SCREEN[0] * downsample, SCREEN[1] * downsample
    out = []
    for _ in range(count):
        x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        out.append((x, y, x + w, y + h))
    return out


def query_over_http(client: httpx.Client, slide_id: int, views) -> tuple[list[float], list[float], list[int]]:
    client_ms, server_ms, counts = [], [], []
    for view in views:
        started = time.perf_counter()
        response = client.get(f"/api/slides/{slide_id}/annotations/", params={"bbox": ",".join(f"{v:.0f}" for v in view)})
        client_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"viewport query: {response.status_code} {response.text[:200]}")
        server_ms.append(float(response.headers["server-timing"].split("dur=")[1]))
        counts.append(len(response.json()["results"]))
    return client_ms, server_ms, counts


def query_in_process(slide, views, indexed: bool) -> list[float]:
    from webapp.annotations.models import Annotation

    timings = []
    for x0, y0, x1, y1 in views:
        annotations = Annotation.objects.filter(slide=slide).alive()
        if indexed:
            annotations = annotations.intersecting(x0, y0, x1, y1)
        else:
            annotations = annotations.filter(min_x__lte=x1, max_x__gte=x0, min_y__lte=y1, max_y__gte=y0)
        started = time.perf_counter()
        list(annotations.order_by("id").values_list("id", "geometry")[:500])
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--polygons", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    body = polygons(args.polygons)
    # The 100k-polygon file (~40 MiB) is larger than the default 10 MiB request body limit.
    with django_env("pathdesk_bench_annotations") as env:
        from django.db import connection

        from webapp.annotations import limits, qupath
        from webapp.wsi.models import Slide

        token, case = make_user_and_case()
        case.department.members.first().set_role("admin")  # the file's classification becomes a label
        slide = Slide.objects.create(case=case, original_filename="bench.svs", stored_path="none", sha256="0" * 64,
                                     size=1, status="ready", metadata={"width": WIDTH, "height": HEIGHT})

        started = time.perf_counter()
        qupath.read_features(qupath.loads(body), width=WIDTH, height=HEIGHT, max_vertices=limits.MAX_VERTICES,
                             max_features=limits.MAX_IMPORT_FEATURES, max_total_vertices=limits.MAX_IMPORT_VERTICES)
        check_s = time.perf_counter() - started

        with uvicorn(env, free_port()) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Token {token}"}, timeout=600
        ) as client:
            started = time.perf_counter()
            response = client.post(f"/api/slides/{slide.pk}/annotations/import", content=body,
                                   headers={"Content-Type": "application/geo+json"})
            import_s = time.perf_counter() - started
            if response.status_code != 201:
                raise RuntimeError(f"import: {response.status_code} {response.text[:300]}")
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE annotations_annotation")

            query_over_http(client, slide.pk, viewports(20, 1, seed=1))  # warm-up: connections, caches
            results = {ds: query_over_http(client, slide.pk, viewports(args.queries, ds, seed=ds)) for ds in (1, 4)}

        views = viewports(args.queries, 1, seed=99)
        plain = query_in_process(slide, views, indexed=False)
        ranged = query_in_process(slide, views, indexed=True)

    print(f"\n== bench/annotations.py — {args.polygons} polygons × 12 vertices on a {WIDTH}×{HEIGHT} slide ==")
    print(f"bulk import over HTTP ({len(body) / 1024**2:.1f} MiB file): {import_s:6.1f} s   (target ≤ 30 s)")
    print(f"  of which parse + check in-process alone:         {check_s:6.1f} s")
    for ds, (client_ms, server_ms, counts) in results.items():
        w, h = SCREEN[0] * ds, SCREEN[1] * ds
        print(f"viewport {SCREEN[0]}×{SCREEN[1]} screen at downsample {ds} ({w}×{h} px, "
              f"{sum(counts) / len(counts):.0f} annotations on average, {len(counts)} queries):")
        print(f"  client p50 {percentile(client_ms, 50):6.1f} ms, p95 {percentile(client_ms, 95):6.1f} ms   "
              f"(target p95 ≤ 100 ms)")
        print(f"  server p50 {percentile(server_ms, 50):6.1f} ms, p95 {percentile(server_ms, 95):6.1f} ms")
    print(f"in-process query, plain bbox filter:     p50 {percentile(plain, 50):6.2f} ms, p95 {percentile(plain, 95):6.2f} ms")
    print(f"in-process query, extent-class ranges:   p50 {percentile(ranged, 50):6.2f} ms, p95 {percentile(ranged, 95):6.2f} ms")
    print(f"  ratio extent-class ÷ plain (p50):      {percentile(ranged, 50) / percentile(plain, 50):6.2f}")


if __name__ == "__main__":
    main()
