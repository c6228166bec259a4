"""Fixtures for inference tests: offline Hugging Face, tiny checkpoints made once per session, slide paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before transformers is imported anywhere: nothing in these tests may reach a hub or its cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", "/nonexistent-hf-home")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SLIDES_DIR = Path(__file__).resolve().parents[2].parent / "shared/testdata/slides"


@pytest.fixture(scope="session")
def real_slides_dir() -> Path:
    """The third-party sample slides; their absence is a broken checkout, not a reason to skip."""
    if not (SLIDES_DIR / "SOURCES.md").is_file():
        raise FileNotFoundError(f"real test slides missing: {SLIDES_DIR} (see DESIGN.md §5)")
    return SLIDES_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.tiny import init_tiny

    return init_tiny(tmp_path_factory.mktemp("tiny-omnipath"))


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.tiny import init_tiny_llava

    return init_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inference-slides")


@pytest.fixture(scope="session")
def textured_slide(slide_dir: Path) -> Path:
    """4096×2048 px at 0.5 µm/px (20×): dense nuclei on the left half, fat on the right half."""
    from slides.synth import Blob, write_pyramidal_tiff

    return write_pyramidal_tiff(slide_dir / "textured.tiff", (4096, 2048), mpp=0.5, aperio=True, blobs=[
        Blob((0, 0, 2048, 2048), "nuclei", shape="rect"), Blob((2048, 0, 4096, 2048), "fat", shape="rect")])


@pytest.fixture(scope="session")
def large_slide(slide_dir: Path) -> Path:
    """8192×6144 px at 0.5 µm/px with the default three tissue blobs (hundreds of coarse tiles)."""
    from slides.synth import write_pyramidal_tiff

    return write_pyramidal_tiff(slide_dir / "large.tiff", (8192, 6144), mpp=0.5, aperio=True)


@pytest.fixture(scope="session")
def no_mpp_slide(slide_dir: Path) -> Path:
    """A generic TIFF with neither microns per pixel nor objective power."""
    from slides.synth import write_pyramidal_tiff

    return write_pyramidal_tiff(slide_dir / "no-mpp.tiff", (2048, 1536))


@pytest.fixture(scope="session")
def omnipath(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The tiny OmniPath backend, loaded once, with a session feature store."""
    from inference.backends import load_backend
    from inference.feature_store import FeatureStore

    return load_backend("omnipath", tiny_model_dir, device="cpu",
                        store=FeatureStore(tmp_path_factory.mktemp("feature-store")))


@pytest.fixture(scope="session")
def make_example():  # noqa: ANN201
    """A factory of synthetic training examples for the tiny config: random features, square tile layout."""
    import numpy as np
    import torch

    from inference.training import TrainingExample

    generator = torch.Generator().manual_seed(1234)

    def make(tiles: int = 6, fine: int = 2, task: str = "question", question: str = "What is this?",
             **labels: object) -> TrainingExample:
        cols, rows = np.meshgrid(np.arange(8), np.arange(8))
        tile_cr = np.stack([cols.ravel(), rows.ravel()], axis=1)[:tiles]
        return TrainingExample(
            general_features=torch.randn(tiles, 256, generator=generator),
            pathology_features=torch.randn(tiles, 256, generator=generator),
            tile_cr=tile_cr, task=task, question=question,
            fine_general_features=torch.randn(fine, 256, generator=generator),
            fine_pathology_features=torch.randn(fine, 256, generator=generator),
            **labels,  # type: ignore[arg-type]
        )

    return make
