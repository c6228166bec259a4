"""Tissue-tile grids at a requested magnification (slides.tiling)."""

from __future__ import annotations

from pathlib import Path

import pytest

import slides
from slides.synth import Blob, write_pyramidal_tiff
from slides.tiling import tissue_tile_grid


@pytest.fixture(scope="module")
def slide_40x(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2048×1024 at 0.25 µm/px (40×), levels 1/4/16; tissue only on the left half."""
    path = tmp_path_factory.mktemp("tiling") / "s40.tiff"
    return write_pyramidal_tiff(path, (2048, 1024), mpp=0.25, aperio=True, objective_power=40,
                                blobs=[Blob((0, 0, 1024, 1024), "nuclei", shape="rect")])


@pytest.fixture(scope="module")
def slide_no_mpp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pyramidal_tiff(tmp_path_factory.mktemp("tiling") / "nompp.tiff", (1024, 768))


def test_magnification_follows_microns_per_pixel(slide_40x: Path) -> None:
    with slides.open_slide(slide_40x) as slide:
        at20 = tissue_tile_grid(slide, 20, 128, min_tissue=0)
        at5 = tissue_tile_grid(slide, 5, 64, min_tissue=0)
    assert at20.downsample == 2 and at20.level == 0 and at20.read_size == 256
    assert at20.grid_size == (8, 4) and at20.scale.scale_source == "mpp"
    assert at5.downsample == 8 and at5.level == 1 and at5.level_downsample == 4 and at5.read_size == 128


def test_tiles_are_read_at_the_requested_size(slide_40x: Path) -> None:
    with slides.open_slide(slide_40x) as slide:
        grid = tissue_tile_grid(slide, 10, 96, min_tissue=0)
        image = grid.read_tile(slide, 0)
    assert image.size == (96, 96) and image.mode == "RGB"


def test_background_tiles_are_dropped(slide_40x: Path) -> None:
    with slides.open_slide(slide_40x) as slide:
        grid = tissue_tile_grid(slide, 20, 128)
    assert len(grid) > 0
    assert (grid.l0_xy[:, 0] < 1024).all()  # only the left half holds tissue


def test_tile_size_and_stride_are_configurable(slide_40x: Path) -> None:
    with slides.open_slide(slide_40x) as slide:
        plain = tissue_tile_grid(slide, 20, 128, min_tissue=0)
        overlapping = tissue_tile_grid(slide, 20, 128, stride=64, min_tissue=0)
    assert overlapping.grid_size == (15, 7) and len(overlapping) > len(plain)
    assert overlapping.l0_xy[1, 0] - overlapping.l0_xy[0, 0] == 128  # 64 mag px = 128 level-0 px


def test_roi_restricts_the_grid(slide_40x: Path) -> None:
    with slides.open_slide(slide_40x) as slide:
        grid = tissue_tile_grid(slide, 20, 128, min_tissue=0, l0_roi=(256, 256, 512, 256))
    assert grid.l0_origin == (256, 256) and len(grid) == 2


def test_more_than_the_scan_is_read_at_the_scan_and_said(slide_40x: Path) -> None:
    with slides.open_slide(slide_40x) as slide:
        grid = tissue_tile_grid(slide, 80, 128, min_tissue=0)
    assert grid.magnification == pytest.approx(40) and grid.downsample == 1
    assert "scanned at 40×" in grid.scale.notes[0]


def test_unknown_mpp_falls_back_to_pyramid_levels_and_says_so(slide_no_mpp: Path) -> None:
    with slides.open_slide(slide_no_mpp) as slide:
        grid = tissue_tile_grid(slide, 5, 64, min_tissue=0)
    assert grid.scale.scale_source == "pyramid-fallback"
    assert grid.downsample == 4 and grid.level == 1
    assert "no usable microns per pixel" in grid.describe()["notes"][0]


def test_a_slide_smaller_than_a_tile_still_gets_one(tmp_path: Path) -> None:
    path = write_pyramidal_tiff(tmp_path / "tiny.tiff", (48, 40), mpp=0.5, downsamples=(1,), tile_size=16)
    with slides.open_slide(path) as slide:
        grid = tissue_tile_grid(slide, 20, 224, min_tissue=0)
    assert len(grid) == 1
