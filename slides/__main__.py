"""Command line: ``python -m slides info PATH [--json]`` and ``python -m slides tile PATH LEVEL COL ROW -o OUT``.

Any file that cannot be served prints one line ``error: <reason>`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slides.deepzoom import DeepZoom
from slides.errors import SlideError
from slides.metadata import SlideMetadata
from slides.slide import open_slide


def _human(path: str, meta: SlideMetadata) -> str:
    def unknown(value: object, unit: str = "") -> str:
        return "unknown" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    lines = [
        f"file:              {path}",
        f"format:            {meta.format}" + (f" ({meta.vendor})" if meta.vendor else ""),
        f"size:              {meta.width} × {meta.height} px",
        f"microns per pixel: {unknown(meta.mpp_x)} × {unknown(meta.mpp_y)}",
        f"objective power:   {unknown(meta.objective_power, '×')}",
        f"levels:            {meta.level_count}",
    ]
    for level, ((w, h), ds) in enumerate(zip(meta.level_dimensions, meta.level_downsamples, strict=True)):
        lines.append(f"  level {level}: {w} × {h} px, downsample {ds:g}")
    lines.append(f"associated images: {', '.join(meta.associated_images) or 'none'}")
    return "\n".join(lines)


def _info(args: argparse.Namespace) -> int:
    with open_slide(args.path) as slide:
        meta = slide.metadata
    if args.json:
        print(json.dumps(meta.to_dict(properties=args.properties), indent=2))
    else:
        print(_human(args.path, meta))
    return 0


def _tile(args: argparse.Namespace) -> int:
    with open_slide(args.path) as slide:
        dz = DeepZoom(slide, tile_size=args.tile_size, overlap=args.overlap, limit_bounds=args.limit_bounds)
        data = dz.get_tile_jpeg(args.level, args.col, args.row, quality=args.quality)
    try:
        Path(args.output).write_bytes(data)
    except OSError as e:
        raise SlideError(f"cannot write {args.output}: {e.strerror}") from e
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slides", description="Inspect whole-slide images.")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print a slide's metadata")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--properties", action="store_true", help="with --json: add every OpenSlide property")
    info.set_defaults(run=_info)
    tile = sub.add_parser("tile", help="write one DeepZoom tile as JPEG")
    tile.add_argument("path")
    tile.add_argument("level", type=int, help="DeepZoom level (0 = 1×1 px)")
    tile.add_argument("col", type=int, help="tile column")
    tile.add_argument("row", type=int, help="tile row")
    tile.add_argument("-o", "--output", required=True, help="output .jpg file")
    tile.add_argument("--tile-size", type=int, default=254)
    tile.add_argument("--overlap", type=int, default=1)
    tile.add_argument("--quality", type=int, default=80)
    tile.add_argument("--limit-bounds", action="store_true")
    tile.set_defaults(run=_tile)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except SlideError as e:
        print(f"error: {e}".replace("\n", " "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
