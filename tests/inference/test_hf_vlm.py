"""The hf-vlm backend on a tiny random LLaVA checkpoint saved locally."""

from __future__ import annotations

from pathlib import Path

from inference.analysis import AnalysisRequest
from inference.backends import load_backend
from inference.feature_store import FeatureStore


def test_llava_sees_the_thumbnail_and_pgfc_crops(
    tiny_llava_dir: Path, tiny_model_dir: Path, textured_slide: Path, tmp_path: Path
) -> None:
    backend = load_backend("hf-vlm", tiny_llava_dir, device="cpu", selector_dir=tiny_model_dir,
                           store=FeatureStore(tmp_path))
    stream = backend.analyze(AnalysisRequest(textured_slide, "Is there cancer?", max_new_tokens=6))
    pieces = list(stream)
    result = stream.result
    assert "".join(pieces) == result.text
    assert result.backend == "hf-vlm" and result.generated_tokens > 0
    assert len(result.regions) == 4  # the PGFC-chosen crops
    assert result.visual_tokens == 16 * 5  # thumbnail + 4 crops, 16 image tokens each
    assert result.tiles_encoded["20x"] < result.tissue_tiles["20x"]


def test_without_a_selector_it_says_how_crops_were_chosen(
    tiny_llava_dir: Path, textured_slide: Path
) -> None:
    backend = load_backend("hf-vlm", tiny_llava_dir, device="cpu")
    result = backend.analyze(AnalysisRequest(textured_slide, "Describe.", max_new_tokens=2)).run()
    assert any("richest in tissue" in note for note in result.notes)
