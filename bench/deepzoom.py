"""DeepZoom tile rendering: slides.DeepZoom against openslide's DeepZoomGenerator, measured side by side.

    python bench/deepzoom.py [--rounds 3] [--block 6]

Generates (once, cached under bench/out/) a 32768×32768 JPEG-tiled pyramidal TIFF with levels at
downsample 1, 4, 16, 64 — SVS-like 4× steps, so DeepZoom downsamples 2, 8, 32 fall between native
levels. For every DeepZoom level from downsample 1 to 64 it renders tiles to JPEG (quality 80) with
both implementations and reports ms per tile:

- "viewport": a block×block square of neighbouring tiles inside tissue, as a viewer requests them;
- "scattered": the same number of tiles spread over the tissue (little reuse between tiles).

Each measurement starts cold (fresh OpenSlide handle, empty decoded-tile cache); the implementations
alternate within each round and the median round counts, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openslide  # noqa: E402
from openslide.deepzoom import DeepZoomGenerator  # noqa: E402

import slides  # noqa: E402
from slides.fastjpeg import DECODED_TILES  # noqa: E402
from slides.synth import default_blobs, write_pyramidal_tiff  # noqa: E402

SIZE = (32768, 32768)
DOWNSAMPLES = (1, 4, 16, 64)
QUALITY = 80


def bench_slide() -> Path:
    path = ROOT / "bench" / "out" / "synth-32k-t256-ds1-4-16-64-q80.tiff"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {path.name} (about a minute, once) …", flush=True)
        t0 = time.perf_counter()
        tmp = path.with_suffix(".partial")
        write_pyramidal_tiff(tmp, SIZE, downsamples=DOWNSAMPLES, jpeg_quality=80, jpeg_tables=True, aperio=True, mpp=0.25)
        tmp.rename(path)
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def tile_addresses(dz: slides.DeepZoom, dz_level: int, block: int, scattered: bool) -> list[tuple[int, int]]:
    """Tiles inside the first (nuclei) blob of the synthetic slide."""
    ds = 2 ** (dz.level_count - 1 - dz_level)
    x0, y0, x1, y1 = default_blobs(SIZE)[0].box
    cx, cy = (x0 + x1) / 2 / ds / dz.tile_size, (y0 + y1) / 2 / ds / dz.tile_size
    cols, rows = dz.level_tiles[dz_level]
    if scattered:
        rng = random.Random(dz_level)
        rx, ry = (x1 - x0) / 2 / ds / dz.tile_size * 0.6, (y1 - y0) / 2 / ds / dz.tile_size * 0.6
        cand = {
            (min(cols - 1, max(0, int(cx + rng.uniform(-rx, rx)))), min(rows - 1, max(0, int(cy + rng.uniform(-ry, ry)))))
            for _ in range(block * block * 4)
        }
        return sorted(cand, key=lambda a: rng.random())[: block * block]
    c0 = max(0, min(cols - block, int(cx - block / 2)))
    r0 = max(0, min(rows - block, int(cy - block / 2)))
    return [(c, r) for r in range(r0, min(rows, r0 + block)) for c in range(c0, min(cols, c0 + block))]


def time_ours(path: Path, dz_level: int, addrs: list[tuple[int, int]]) -> float:
    DECODED_TILES.clear()
    with slides.open_slide(path) as slide:
        dz = slides.DeepZoom(slide)
        dz.get_tile_jpeg(0, 0, 0)  # builds the fast-path index, as the first request of any viewer would
        t0 = time.perf_counter()
        for col, row in addrs:
            dz.get_tile_jpeg(dz_level, col, row, quality=QUALITY)
        return (time.perf_counter() - t0) / len(addrs)


def time_stock(path: Path, dz_level: int, addrs: list[tuple[int, int]]) -> float:
    osr = openslide.OpenSlide(str(path))
    try:
        dz = DeepZoomGenerator(osr, tile_size=254, overlap=1)
        t0 = time.perf_counter()
        for address in addrs:
            buf = io.BytesIO()
            dz.get_tile(dz_level, address).save(buf, "JPEG", quality=QUALITY)
        return (time.perf_counter() - t0) / len(addrs)
    finally:
        osr.close()


def measure(path: Path, rounds: int, block: int, scattered: bool) -> dict[int, dict[str, float]]:
    with slides.open_slide(path) as slide:
        dz = slides.DeepZoom(slide)
        top = dz.level_count - 1
        levels = [top - k for k in range(int(math.log2(DOWNSAMPLES[-1])) + 1)]
        plan = {lv: tile_addresses(dz, lv, block, scattered) for lv in levels}
    impls: dict[str, Callable[[Path, int, list[tuple[int, int]]], float]] = {"ours": time_ours, "stock": time_stock}
    samples: dict[int, dict[str, list[float]]] = {lv: {name: [] for name in impls} for lv in levels}
    for r in range(rounds):
        order = list(impls.items()) if r % 2 == 0 else list(reversed(impls.items()))
        for lv in levels:
            for name, fn in order:
                samples[lv][name].append(fn(path, lv, plan[lv]))
    return {lv: {name: statistics.median(v) for name, v in s.items()} for lv, s in samples.items()}


def report(title: str, results: dict[int, dict[str, float]], top: int) -> None:
    print(f"\n{title}: ms per tile (JPEG q{QUALITY}, 256×256)")
    print(f"{'DZ ds':>6} {'kind':>11} {'ours':>8} {'stock':>8} {'stock/ours':>11}")
    native: dict[str, list[float]] = {"ours": [], "stock": []}
    between: dict[str, list[float]] = {"ours": [], "stock": []}
    for lv in sorted(results, reverse=True):
        ds = 2 ** (top - lv)
        kind = "native" if ds in DOWNSAMPLES else "in-between"
        r = results[lv]
        (native if kind == "native" else between)["ours"].append(r["ours"])
        (native if kind == "native" else between)["stock"].append(r["stock"])
        print(f"{ds:>6} {kind:>11} {r['ours'] * 1e3:8.2f} {r['stock'] * 1e3:8.2f} {r['stock'] / r['ours']:11.2f}")
    mean = statistics.fmean
    by_ds = {2 ** (top - lv): r for lv, r in results.items()}
    pairs = [(ds, ds // 2) for ds in sorted(by_ds) if ds not in DOWNSAMPLES and ds // 2 in DOWNSAMPLES]
    for name in ("ours", "stock"):
        ratios = [by_ds[ds][name] / by_ds[native_ds][name] for ds, native_ds in pairs]
        text = "  ".join(f"{ds}/{native_ds}: {r:.2f}" for (ds, native_ds), r in zip(pairs, ratios, strict=True))
        print(f"  in-between ÷ native it is read from, {name:>5}: {text}   (mean {mean(ratios):.2f})")
    print(
        f"  stock ÷ ours (mean ms/tile): native {mean(native['stock']) / mean(native['ours']):.2f}   "
        f"in-between {mean(between['stock']) / mean(between['ours']):.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block", type=int, default=6, help="viewport edge in tiles (block² tiles per level)")
    args = parser.parse_args()
    path = bench_slide()
    with slides.open_slide(path) as slide:
        top = slides.DeepZoom(slide).level_count - 1
    print(f"slide: {path.name}, {SIZE[0]}×{SIZE[1]} px, levels at downsample {DOWNSAMPLES}")
    report("viewport", measure(path, args.rounds, args.block, scattered=False), top)
    report("scattered", measure(path, args.rounds, args.block, scattered=True), top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
