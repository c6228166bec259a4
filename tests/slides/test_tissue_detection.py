"""Tissue detection finds the painted tissue of generated slides and nothing on blank glass."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

import slides
from slides.synth import Blob, default_blobs, tissue_fraction, write_pyramidal_tiff


def test_it_measures_the_tissue_fraction_of_a_generated_slide(jpeg_slide: Path) -> None:
    with slides.open_slide(jpeg_slide) as slide:
        tissue = slides.detect_tissue(slide)
    blobs = default_blobs((3000, 2000))
    # adipose is pale, empty cells: its membranes are found, most of its inside (like glass) is not
    solid = tissue_fraction([b for b in blobs if b.texture != "fat"], (3000, 2000))
    assert solid - 0.02 < tissue.fraction < tissue_fraction(blobs, (3000, 2000))
    assert tissue.mask.dtype == bool and tissue.mask.ndim == 2
    assert max(tissue.mask.shape) <= 2048
    assert tissue.downsample == pytest.approx(3000 / tissue.mask.shape[1], rel=0.01)


def test_the_mask_is_where_the_tissue_is(two_texture_slide: tuple[Path, list[Blob]]) -> None:
    path, blobs = two_texture_slide
    with slides.open_slide(path) as slide:
        tissue = slides.detect_tissue(slide, max_size=512)
    ds = tissue.downsample

    def at(l0_x: int, l0_y: int) -> bool:
        return bool(tissue.mask[int(l0_y / ds), int(l0_x / ds)])

    assert at(500, 1000) and at(1550, 1000)  # inside the nuclei rectangle and the stroma ellipse
    assert not at(1020, 1000) and not at(50, 50) and not at(2000, 2000)  # glass
    assert tissue.fraction == pytest.approx(tissue_fraction(blobs, (2048, 2048)), abs=0.03)


def test_blank_glass_has_no_tissue(tmp_path: Path) -> None:
    path = write_pyramidal_tiff(tmp_path / "blank.tiff", (1024, 768), downsamples=(1, 4), blobs=[])
    with slides.open_slide(path) as slide:
        assert slides.detect_tissue(slide).fraction == 0.0


def test_the_mask_exports_as_png(jpeg_slide: Path) -> None:
    with slides.open_slide(jpeg_slide) as slide:
        tissue = slides.detect_tissue(slide, max_size=256)
    with Image.open(io.BytesIO(tissue.to_png())) as im:
        assert im.format == "PNG" and im.mode == "L"
        assert im.size == (tissue.mask.shape[1], tissue.mask.shape[0])


def test_it_works_on_real_slides(testdata: Path) -> None:
    with slides.open_slide(testdata / "svs/CMU-1-Small-Region.svs") as slide:
        tissue = slides.detect_tissue(slide)
    assert 0.2 < tissue.fraction < 0.95
