"""Real third-party slides open with the metadata SOURCES.md records."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import openslide
import pytest
from openslide.deepzoom import DeepZoomGenerator
from PIL import Image

import slides

DZI_NS = "{http://schemas.microsoft.com/deepzoom/2008}"

# (relative path, format, (w, h), downsamples, mpp or None, objective or None, associated images)
GOOD = [
    ("svs/CMU-1-Small-Region.svs", "aperio", (2220, 2967), [1.0], 0.499, 20.0, ("label", "macro", "thumbnail")),
    ("svs/small.svs", "aperio", (16, 16), [1.0], 0.499, 20.0, ("thumbnail",)),
    ("dicom/boxes/boxes_0.dcm", "dicom", (16, 16), [1.0], 0.499, 20.0, ("thumbnail",)),
    ("dicom/boxes/boxes_1.dcm", "dicom", (16, 16), [1.0], 0.499, 20.0, ("thumbnail",)),
    ("dicom/wsi2dcm-jpeg/jpeg.dicom", "dicom", (957, 715), [1.0], 16.783, None, ()),
    # the generic TIFFs claim ~352.8 µm/px: a 72-dpi resolution tag, not a calibration → unknown
    ("tiff/boxes.tiff", "generic-tiff", (300, 250), [1.0, 2.0, 4.016, 8.086], None, None, ()),
    ("tiff/yb10kx5k.zstd.tiff", "generic-tiff", (10000, 5000), [1.0, 2.0, 4.0, 8.0, 16.013], None, None, ()),
]


@pytest.mark.parametrize(("rel", "fmt", "size", "downsamples", "mpp", "objective", "associated"), GOOD, ids=[g[0] for g in GOOD])
def test_it_reads_metadata_as_sources_md_says(
    testdata: Path, rel: str, fmt: str, size: tuple[int, int], downsamples: list[float],
    mpp: float | None, objective: float | None, associated: tuple[str, ...],
) -> None:
    with slides.open_slide(testdata / rel) as slide:
        meta = slide.metadata
        assert meta.format == fmt
        assert (meta.width, meta.height) == size == slide.dimensions
        assert meta.level_count == len(downsamples) == slide.level_count
        assert meta.level_downsamples == pytest.approx(downsamples, abs=1e-3)
        assert meta.level_dimensions[0] == size
        if mpp is None:
            assert meta.mpp_x is None and meta.mpp_y is None
        else:
            assert meta.mpp_x == pytest.approx(mpp, abs=1e-3) and meta.mpp_y == pytest.approx(mpp, abs=1e-3)
        assert meta.objective_power == objective
        assert meta.associated_images == associated
        doc = json.loads(json.dumps(meta.to_dict()))
        for key in ("format", "width", "height", "level_count", "level_dimensions", "level_downsamples",
                    "mpp_x", "mpp_y", "objective_power", "associated_images"):
            assert key in doc
        assert doc["level_dimensions"][0] == list(size)


@pytest.mark.parametrize("rel", [g[0] for g in GOOD])
def test_it_renders_a_thumbnail_and_associated_images(testdata: Path, rel: str) -> None:
    with slides.open_slide(testdata / rel) as slide:
        thumb = slide.get_thumbnail((256, 256))
        assert thumb.mode == "RGB" and max(thumb.size) <= 256 and min(thumb.size) >= 1
        for name in slide.metadata.associated_images:
            im = slide.associated_image(name)
            assert im.mode == "RGB" and im.width > 0
        with pytest.raises(slides.SlideError, match="no 'nonesuch' image"):
            slide.associated_image("nonesuch")


def test_metadata_is_read_only(testdata: Path) -> None:
    with slides.open_slide(testdata / "svs/CMU-1-Small-Region.svs") as slide:
        meta = slide.metadata
        with pytest.raises(AttributeError):
            meta.width = 1  # type: ignore[misc]
        with pytest.raises(TypeError):
            meta.properties["aperio.MPP"] = "1"  # type: ignore[index]
        assert meta.properties["aperio.AppMag"] == "20"
        assert meta.vendor == "Leica Aperio" and meta.tile_hint == (240, 240)


def test_read_region_paints_outside_the_slide_white(testdata: Path) -> None:
    with slides.open_slide(testdata / "svs/small.svs") as slide:
        im = slide.read_region((8, 8), 0, (32, 32))
        assert im.mode == "RGB" and im.size == (32, 32)
        assert im.getpixel((31, 31)) == (255, 255, 255)
        assert im.getpixel((0, 0)) != (255, 255, 255)


def test_read_region_refuses_bad_arguments(testdata: Path) -> None:
    with slides.open_slide(testdata / "svs/small.svs") as slide:
        with pytest.raises(slides.SlideError, match="level 3 does not exist"):
            slide.read_region((0, 0), 3, (4, 4))
        with pytest.raises(slides.SlideError, match="empty region"):
            slide.read_region((0, 0), 0, (0, 4))
        with pytest.raises(slides.SlideError, match="too large"):
            slide.read_region((0, 0), 0, (100_000, 100_000))


def test_a_closed_slide_refuses_reads(testdata: Path) -> None:
    slide = slides.open_slide(testdata / "svs/small.svs")
    slide.close()
    slide.close()
    with pytest.raises(slides.SlideError, match="closed"):
        slide.read_region((0, 0), 0, (4, 4))


def test_best_level_for_downsample_follows_openslide(testdata: Path) -> None:
    with slides.open_slide(testdata / "tiff/yb10kx5k.zstd.tiff") as slide:
        assert [slide.best_level_for_downsample(d) for d in (0.5, 1, 1.9, 2, 7.9, 8, 100)] == [0, 0, 0, 1, 2, 3, 4]


@pytest.mark.parametrize("rel", [g[0] for g in GOOD])
def test_it_serves_dzi_and_jpeg_tiles_of_real_slides(testdata: Path, rel: str) -> None:
    with slides.open_slide(testdata / rel) as slide:
        dz = slides.DeepZoom(slide)
        root = ET.fromstring(dz.get_dzi("jpeg"))
        assert root.tag == f"{DZI_NS}Image"
        assert (root.get("TileSize"), root.get("Overlap"), root.get("Format")) == ("254", "1", "jpeg")
        size = root.find(f"{DZI_NS}Size")
        assert size is not None
        assert (int(size.get("Width", 0)), int(size.get("Height", 0))) == slide.dimensions
        stock = DeepZoomGenerator(openslide.OpenSlide(str(testdata / rel)))
        assert dz.level_count == stock.level_count
        assert dz.level_tiles == stock.level_tiles
        assert dz.level_dimensions == stock.level_dimensions
        assert dz.tile_count == stock.tile_count
        top = dz.level_count - 1
        cols, rows = dz.level_tiles[top]
        data = dz.get_tile_jpeg(top, cols - 1, rows - 1, quality=75)
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert im.size == stock.get_tile_dimensions(top, (cols - 1, rows - 1))
