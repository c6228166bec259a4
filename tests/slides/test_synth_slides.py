"""Generated slides read back as intended: resolution tags, Aperio description, compressions."""

from __future__ import annotations

from pathlib import Path

import pytest

import slides
from slides.synth import write_pyramidal_tiff


def test_without_resolution_tags_mpp_is_unknown(jpeg_slide: Path) -> None:
    with slides.open_slide(jpeg_slide) as slide:
        meta = slide.metadata
    assert meta.format == "generic-tiff" and meta.mpp_x is None and meta.objective_power is None
    assert meta.level_dimensions == ((3000, 2000), (750, 500), (188, 125))
    assert meta.level_downsamples[1] == 4.0


def test_resolution_tags_give_mpp(tmp_path: Path) -> None:
    path = write_pyramidal_tiff(tmp_path / "r.tiff", (1024, 768), downsamples=(1, 2), mpp=0.5, compression="lzw")
    with slides.open_slide(path) as slide:
        assert slide.metadata.mpp_x == pytest.approx(0.5) and slide.metadata.mpp_y == pytest.approx(0.5)
        assert slide.metadata.format == "generic-tiff"


def test_an_implausible_resolution_is_unknown(tmp_path: Path) -> None:
    path = write_pyramidal_tiff(tmp_path / "dpi.tiff", (512, 512), downsamples=(1,), mpp=25400 / 72)
    with slides.open_slide(path) as slide:
        assert slide.metadata.mpp_x is None


def test_the_aperio_description_makes_an_aperio_slide(aperio_slide: Path) -> None:
    with slides.open_slide(aperio_slide) as slide:
        meta = slide.metadata
    assert meta.format == "aperio" and meta.vendor == "Leica Aperio"
    assert meta.mpp_x == pytest.approx(0.25) and meta.objective_power == 20.0
    assert meta.properties["aperio.AppMag"] == "20"


@pytest.mark.parametrize("compression", ["zlib", "none"])
def test_other_compressions_open(tmp_path: Path, compression: str) -> None:
    path = write_pyramidal_tiff(tmp_path / "c.tiff", (600, 400), downsamples=(1, 2), compression=compression)
    with slides.open_slide(path) as slide:
        assert slide.level_count == 2
        assert slide.read_region((150, 150), 0, (4, 4)).getpixel((0, 0)) != (243, 243, 243)
