"""DeepZoom: the same pyramid as openslide's generator, DZI documents, JPEG tiles, 404-able addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

import slides


@pytest.mark.parametrize(("dz_level", "address"), [(-1, (0, 0)), (99, (0, 0)), ("top", (0, 99)), ("top", (-1, 0))])
def test_an_address_outside_the_pyramid_is_tile_not_found(
    jpeg_slide: Path, dz_level: int | str, address: tuple[int, int]
) -> None:
    with slides.open_slide(jpeg_slide) as slide:
        dz = slides.DeepZoom(slide)
        level = dz.level_count - 1 if dz_level == "top" else int(dz_level)
        with pytest.raises(slides.TileNotFound):
            dz.get_tile(level, address)
        assert issubclass(slides.TileNotFound, slides.SlideError)


def test_edge_tiles_have_the_declared_size(jpeg_slide: Path) -> None:
    with slides.open_slide(jpeg_slide) as slide:
        dz = slides.DeepZoom(slide, tile_size=510, overlap=2)
        for dz_level in range(dz.level_count):
            cols, rows = dz.level_tiles[dz_level]
            z_w, z_h = dz.level_dimensions[dz_level]
            tile = dz.get_tile(dz_level, (cols - 1, rows - 1))
            expected_w = z_w - 510 * (cols - 1) + (2 if cols > 1 else 0)
            expected_h = z_h - 510 * (rows - 1) + (2 if rows > 1 else 0)
            assert tile.size == (expected_w, expected_h), dz_level


def test_limit_bounds_without_bounds_properties_changes_nothing(jpeg_slide: Path) -> None:
    with slides.open_slide(jpeg_slide) as slide:
        assert slides.DeepZoom(slide, limit_bounds=True).level_tiles == slides.DeepZoom(slide).level_tiles
