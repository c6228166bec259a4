"""Boolean masks → polygons (GeoJSON-style rings of pixel-corner coordinates)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

Ring = list[tuple[float, float]]


def _components(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """4-connected components of a ``(H, W)`` bool mask as lists of (row, col)."""
    seen = np.zeros_like(mask, dtype=bool)
    height, width = mask.shape
    components = []
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        todo, pixels = deque([(int(r0), int(c0))]), []
        while todo:
            r, c = todo.popleft()
            pixels.append((r, c))
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < height and 0 <= cc < width and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    todo.append((rr, cc))
        components.append(pixels)
    return components


def _simplify(ring: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    n = len(ring)
    for i in range(n):
        (x0, y0), (x1, y1), (x2, y2) = ring[i - 1], ring[i], ring[(i + 1) % n]
        if (x1 - x0) * (y2 - y1) != (y1 - y0) * (x2 - x1):
            out.append(ring[i])
    return out


def mask_to_polygons(mask: np.ndarray) -> list[list[list[tuple[int, int]]]]:
    """Polygons of a ``(H, W)`` bool mask: one per 4-connected component, ``[outer ring, *holes]``.

    Vertices are pixel corners in mask pixel coordinates (x = column, y = row); rings are closed
    (first vertex repeated last), outer rings run clockwise in image coordinates (y down).
    """
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    polygons = []
    for pixels in _components(mask):
        inside = set(pixels)
        edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for r, c in pixels:
            sides = (((r - 1, c), (c, r), (c + 1, r)), ((r, c + 1), (c + 1, r), (c + 1, r + 1)),
                     ((r + 1, c), (c + 1, r + 1), (c, r + 1)), ((r, c - 1), (c, r + 1), (c, r)))
            for neighbour, start, end in sides:
                if neighbour not in inside:
                    edges.setdefault(start, []).append(end)
        rings = []
        while edges:
            start = min(edges)
            ring, vertex = [start], start
            while True:
                targets = edges[vertex]
                nxt = targets.pop()
                if not targets:
                    del edges[vertex]
                if nxt == start:
                    break
                ring.append(nxt)
                vertex = nxt
            ring = _simplify(ring)
            rings.append(ring + [ring[0]])
        rings.sort(key=lambda ring: -_area(ring))
        polygons.append(rings)
    del height, width
    return polygons


def _area(ring: list[tuple[int, int]]) -> float:
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False))) / 2


def rasterize_polygons(grid: object, polygons: Sequence[Sequence[Sequence[Sequence[float]]]],
                       resolution: int) -> np.ndarray:
    """Per-tile lesion masks ``(N, r, r)`` float32 (1 inside) from polygons in level-0 px.

    grid: a :class:`slides.tiling.TileGrid`; each tile is split into ``r × r`` pixels of
    ``l0_tile_size / r`` level-0 px, row-major as the mask decoder emits them. polygons: GeoJSON Polygon
    coordinate lists ``[outer ring, *holes]`` (annotation geometry, level-0 px). A pixel is inside when its
    centre is, by the even-odd rule over all rings (so holes cut out), the inverse of the mask → polygon
    conversion of segmentation results.
    """
    l0_xy = np.asarray(grid.l0_xy, dtype=np.float64)  # type: ignore[attr-defined]
    step = float(grid.l0_tile_size) / resolution  # type: ignore[attr-defined]
    centres = (np.arange(resolution) + 0.5) * step
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    px = (l0_xy[:, 0, None, None] + cx[None]).reshape(-1)
    py = (l0_xy[:, 1, None, None] + cy[None]).reshape(-1)
    inside = np.zeros(px.shape, dtype=bool)
    for polygon in polygons:
        for ring in polygon:
            points = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
            for (x0, y0), (x1, y1) in zip(points, np.roll(points, -1, axis=0), strict=True):
                if y0 == y1:
                    continue  # a horizontal edge crosses no horizontal ray
                crosses = (y0 > py) != (y1 > py)
                x_at = x0 + (py[crosses] - y0) * (x1 - x0) / (y1 - y0)
                inside[np.flatnonzero(crosses)[px[crosses] < x_at]] ^= True
    return inside.reshape(len(l0_xy), resolution, resolution).astype(np.float32)
