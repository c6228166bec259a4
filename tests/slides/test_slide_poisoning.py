"""A failed pixel read poisons OpenSlide's handle; the Slide reopens rather than reuse it."""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile

import slides
from slides.synth import write_pyramidal_tiff


def test_a_failed_read_poisons_and_the_next_read_reopens(testdata: Path) -> None:
    slide = slides.open_slide(testdata / "bad/unreadable.svs", check_pixels=False)
    with slide:
        first = slide._handle
        with pytest.raises(slides.SlideError, match="Bogus marker length"):
            slide.read_region((0, 0), 0, (16, 16))
        assert slide.poisoned
        assert slide._handle is None
        with pytest.raises(slides.SlideError, match="Bogus marker length"):
            slide.read_region((0, 0), 0, (16, 16))  # a fresh handle that fails on its own
        assert slide._handle is None and first is not None and first.retired


def corrupt_one_tile(path: Path, level_page: int, tile_index: int) -> None:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[level_page]
        offset, count = page.dataoffsets[tile_index], page.databytecounts[tile_index]
    with path.open("r+b") as f:
        f.seek(offset + count // 3)
        f.write(b"\xff\x01" * 64)  # bogus markers in the entropy-coded data


def test_one_bad_tile_does_not_break_the_rest_of_the_slide(tmp_path: Path) -> None:
    path = write_pyramidal_tiff(tmp_path / "s.tiff", (1024, 1024), downsamples=(1, 4), compression="jpeg")
    corrupt_one_tile(path, 0, 5)  # level 0, tile column 1, row 1 (tissue)
    with slides.open_slide(path) as slide:
        good = slide.read_region((0, 768), 0, (64, 64))
        with pytest.raises(slides.SlideError, match="cannot decode the slide's pixels"):
            slide.read_region((300, 300), 0, (64, 64))
        assert slide.poisoned
        again = slide.read_region((0, 768), 0, (64, 64))  # on a poisoned handle this would fail too
        assert not slide.poisoned
        assert again.tobytes() == good.tobytes()


def test_deepzoom_reports_a_bad_tile_and_keeps_serving(tmp_path: Path) -> None:
    # zlib tiles go through OpenSlide (no JPEG fast path), which notices the damage
    path = write_pyramidal_tiff(tmp_path / "s.tiff", (1024, 1024), downsamples=(1, 4), compression="zlib")
    corrupt_one_tile(path, 0, 5)
    with slides.open_slide(path) as slide:
        dz = slides.DeepZoom(slide)
        top = dz.level_count - 1
        with pytest.raises(slides.SlideError):
            dz.get_tile(top, (1, 1))
        assert dz.get_tile(top, (3, 3)).size == (256, 256)
