"""python -m slides info / tile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slides", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=60,
    )


def test_info_prints_json(testdata: Path) -> None:
    result = run_cli("info", testdata / "svs/CMU-1-Small-Region.svs", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == "aperio" and doc["width"] == 2220 and doc["mpp_x"] == 0.499
    assert doc["associated_images"] == ["label", "macro", "thumbnail"]


def test_info_prints_text_with_unknown_mpp(testdata: Path) -> None:
    result = run_cli("info", testdata / "tiff/boxes.tiff")
    assert result.returncode == 0, result.stderr
    assert "generic-tiff" in result.stdout and "microns per pixel: unknown" in result.stdout


def test_tile_writes_a_jpeg(testdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jpg"
    result = run_cli("tile", testdata / "svs/CMU-1-Small-Region.svs", "12", "1", "2", "-o", out)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (256, 256)


def test_tile_out_of_range_is_one_error_line(testdata: Path, tmp_path: Path) -> None:
    result = run_cli("tile", testdata / "svs/small.svs", "4", "9", "9", "-o", tmp_path / "t.jpg")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: tile (9, 9) is outside")
    assert not (tmp_path / "t.jpg").exists()
