"""The JPEG fast path gives OpenSlide's pixels: exactly at native levels, box-filtered between them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest
from openslide.deepzoom import DeepZoomGenerator

import slides


def pixels(im: object) -> np.ndarray:
    return np.asarray(im, dtype=np.int16)


def cases(slide_path: Path) -> list[tuple[int, tuple[int, int]]]:
    """The centre, first and last tile of the six finest DeepZoom levels."""
    with slides.open_slide(slide_path) as slide:
        dz = slides.DeepZoom(slide)
        out = []
        for dz_level in range(dz.level_count - 1, dz.level_count - 7, -1):
            cols, rows = dz.level_tiles[dz_level]
            out += [(dz_level, (cols // 2, rows // 2)), (dz_level, (0, 0)), (dz_level, (cols - 1, rows - 1))]
        return out


@pytest.fixture(params=["jpeg_slide", "aperio_slide", "cmu1"])
def fast_slide(request: pytest.FixtureRequest, testdata: Path) -> Path:
    if request.param == "cmu1":  # real Aperio: RGB-coded JPEG, JPEGTables, 240 px tiles, one level
        return testdata / "svs/CMU-1-Small-Region.svs"
    return request.getfixturevalue(request.param)


def test_the_fast_path_covers_jpeg_tiffs(fast_slide: Path) -> None:
    with slides.open_slide(fast_slide) as slide:
        reader = slide.jpeg_reader()
        assert reader is not None and all(reader.covers(level) for level in range(slide.level_count))


def test_fast_tiles_match_openslide(fast_slide: Path) -> None:
    osr = openslide.OpenSlide(str(fast_slide))
    stock = DeepZoomGenerator(osr)
    with slides.open_slide(fast_slide) as slide:
        dz = slides.DeepZoom(slide)
        for dz_level, address in cases(fast_slide):
            ours = dz.get_tile(dz_level, address)
            (l0_xy, level, l_size), z_size = stock.get_tile_coordinates(dz_level, address), stock.get_tile_dimensions(
                dz_level, address
            )
            assert ours.size == z_size
            factor = round(l_size[0] / z_size[0])
            # OpenSlide's own pixels, box-filtered by the same factor: what DCT-domain scaling approximates
            boxed = slide.read_region(l0_xy, level, (z_size[0] * factor, z_size[1] * factor)).reduce(factor)
            diff = np.abs(pixels(ours) - pixels(boxed))
            where = f"{fast_slide.name} dz {dz_level} {address} ×{factor}"
            if factor == 1:
                assert diff.max() == 0, where
            else:
                assert diff.mean() < 1.5 and np.percentile(diff, 99) < 24, where
            # and stock's LANCZOS-filtered tile, looser: the filters differ on fine texture (and at ×16+ stock
            # stretches a clipped edge region over the whole tile)
            if factor <= 8:
                assert np.abs(pixels(ours) - pixels(stock.get_tile(dz_level, address))).mean() < 6, where


def test_in_between_levels_decode_scaled_not_full(jpeg_slide: Path) -> None:
    from slides.fastjpeg import DECODED_TILES

    DECODED_TILES.clear()
    with slides.open_slide(jpeg_slide) as slide:
        dz = slides.DeepZoom(slide)
        dz.get_tile(dz.level_count - 2, (1, 1))  # downsample 2, between levels 0 (×1) and 1 (×4)
        sizes = {im.size for im in DECODED_TILES._items.values()}
        assert sizes == {(128, 128)}


def test_non_jpeg_slides_fall_back_to_openslide(testdata: Path) -> None:
    path = testdata / "tiff/yb10kx5k.zstd.tiff"
    stock = DeepZoomGenerator(openslide.OpenSlide(str(path)))
    with slides.open_slide(path) as slide:
        assert slide.jpeg_reader() is None
        dz = slides.DeepZoom(slide)
        top = dz.level_count - 1
        for dz_level in (top, top - 1, top - 4):
            a, b = dz.get_tile(dz_level, (1, 1)), stock.get_tile(dz_level, (1, 1))
            assert a.size == b.size
            assert np.abs(pixels(a) - pixels(b)).mean() < 3
