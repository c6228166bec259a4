"""Fixtures for the slides layer: the shared third-party test slides and small generated ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the repo root must import however pytest was started
    sys.path.insert(0, str(REPO))

from slides.synth import Blob, write_pyramidal_tiff  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata" / "slides"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata/slides beside the repository; its absence is an error, not a skip."""
    if not (TESTDATA / "SOURCES.md").is_file():
        pytest.fail(f"shared test slides missing: expected {TESTDATA}/SOURCES.md beside the repository")
    return TESTDATA


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="session")
def jpeg_slide(synth_dir: Path) -> Path:
    """3000×2000 px generic TIFF, JPEG YCbCr 256² tiles, levels at downsample 1, 4, 16, no mpp."""
    return write_pyramidal_tiff(synth_dir / "jpeg.tiff", (3000, 2000), downsamples=(1, 4, 16))


@pytest.fixture(scope="session")
def aperio_slide(synth_dir: Path) -> Path:
    """3000×2000 px Aperio-style SVS: RGB-coded JPEG with shared JPEGTables, 0.25 µm/px, 20×."""
    return write_pyramidal_tiff(
        synth_dir / "aperio.svs", (3000, 2000), downsamples=(1, 4, 16), photometric="rgb",
        jpeg_tables=True, aperio=True, mpp=0.25, objective_power=20,
    )


@pytest.fixture(scope="session")
def two_texture_slide(synth_dir: Path) -> tuple[Path, list[Blob]]:
    """2048×2048 px slide: a nuclei rectangle on the left half, stroma ellipse on the right, glass between."""
    blobs = [Blob((100, 200, 900, 1800), "nuclei", shape="rect"), Blob((1150, 300, 1950, 1700), "stroma")]
    return write_pyramidal_tiff(synth_dir / "two.tiff", (2048, 2048), downsamples=(1, 4), blobs=blobs), blobs
