"""Files that are not servable slides are refused with a reason a person can act on."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

import slides
from slides.synth import write_jpeg_photo, write_plain_tiff, write_png_photo

REPO = Path(__file__).resolve().parents[2]

BAD = {
    "base64-text.svs": "not a whole-slide image: a text file",
    "OT-MONO2-8-colon.dcm": "not a whole-slide image: DICOM Secondary Capture",
    "sm_annotations.dcm": "not a whole-slide image: DICOM Microscopy Bulk Simple Annotations",
    "unopenable.tiff": "cannot be opened (Unsupported TIFF compression: 52479)",
    "unreadable.svs": "cannot decode the slide's pixels",
}


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slides", *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=60,
    )


def test_every_bad_file_is_covered(testdata: Path) -> None:
    assert sorted(p.name for p in (testdata / "bad").iterdir()) == sorted(BAD)


@pytest.mark.parametrize(("name", "reason"), BAD.items())
def test_it_refuses_a_bad_file_with_a_reason(testdata: Path, name: str, reason: str) -> None:
    with pytest.raises(slides.SlideError) as info:
        slides.open_slide(testdata / "bad" / name)
    assert reason in str(info.value)
    assert str(testdata) not in str(info.value)  # server paths stay out of user-facing messages


@pytest.mark.parametrize("name", BAD)
def test_the_cli_prints_one_error_line_and_exits_2(testdata: Path, name: str) -> None:
    result = run_cli("info", testdata / "bad" / name, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_it_refuses_a_big_plain_tiff_without_decoding_it(tmp_path: Path) -> None:
    path = write_plain_tiff(tmp_path / "scan.tif", (8000, 7000))  # 168 MB of pixels if anyone decoded them
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(slides.SlideError) as info:
        slides.open_slide(path)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "plain (non-tiled) TIFF, 8000×7000 px" in str(info.value)
    assert elapsed < 1.0
    assert peak < 5_000_000


def test_it_refuses_a_png_photo(tmp_path: Path) -> None:
    with pytest.raises(slides.SlideError, match=r"not a whole-slide image: PNG picture, 640×480 px; upload"):
        slides.open_slide(write_png_photo(tmp_path / "photo.png"))


def test_it_refuses_a_jpeg_photo_even_named_svs(tmp_path: Path) -> None:
    path = write_jpeg_photo(tmp_path / "photo.svs", (800, 600))
    with pytest.raises(slides.SlideError, match=r"JPEG picture, 800×600 px"):
        slides.open_slide(path)


def test_it_refuses_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.svs").write_bytes(b"")
    with pytest.raises(slides.SlideError, match=r"empty file \(0 bytes\)"):
        slides.open_slide(tmp_path / "empty.svs")


def test_it_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(slides.SlideError, match="file not found"):
        slides.open_slide(tmp_path / "nope.svs")


def test_it_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(slides.SlideError, match="a folder, not a slide file"):
        slides.open_slide(tmp_path)


def test_it_refuses_random_bytes(tmp_path: Path) -> None:
    (tmp_path / "noise.ndpi").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(slides.SlideError, match="unsupported or unrecognised file format"):
        slides.open_slide(tmp_path / "noise.ndpi")


def test_the_cli_refuses_a_missing_file(tmp_path: Path) -> None:
    result = run_cli("info", tmp_path / "nope.svs")
    assert result.returncode == 2
    assert result.stderr == "error: file not found\n"
