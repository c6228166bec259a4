"""The omnipath backend end to end on generated slides: streaming, cancellation, PGFC, budget, segmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference import InferenceError
from inference.analysis import AnalysisRequest
from inference.pgfc import pool_to_slots


def test_streamed_pieces_concatenate_to_the_non_streamed_output(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    request = AnalysisRequest(textured_slide, "Describe the tumour.", task="describe", max_new_tokens=24)
    stream = omnipath.analyze(request)
    pieces = list(stream)
    result = stream.result
    assert len(pieces) > 1
    assert "".join(pieces) == result.text

    scratch = type(result)(text="", model="", backend="", task="describe")
    visual = omnipath.prepare(request, scratch, __import__("threading").Event())
    with torch.inference_mode():
        ids = omnipath.model.language_model.generate(**omnipath.generate_kwargs(request, visual))
    assert omnipath.tokenizer.decode(ids[0], skip_special_tokens=True) == result.text
    assert result.generated_tokens == ids.shape[1]


def test_result_reports_regions_tokens_tiles_and_timings(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    result = omnipath.analyze(AnalysisRequest(textured_slide, "Is there cancer?", task="cancer_detection",
                                              max_new_tokens=8)).run()
    cfg = omnipath.config
    assert len(result.regions) == cfg.pgfc_top_k
    for region in result.regions:
        x, y, w, h = region.l0_box
        assert 0 <= x < 4096 and 0 <= y < 2048 and w == h == cfg.tile_size * 4  # 5× tile at 0.5 µm/px
        assert region.magnification == 20
    assert result.visual_tokens <= result.visual_token_budget == cfg.visual_token_budget
    assert set(result.tissue_tiles) == {"5x", "20x"}
    assert result.tiles_encoded["20x"] <= cfg.pgfc_top_k * 16 < result.tissue_tiles["20x"]
    assert result.timings.first_token >= result.timings.prefill > 0
    assert result.timings.total >= result.timings.first_token
    assert result.model.startswith("omnipath:") and result.tiny_model
    assert any("not a diagnosis" in note for note in result.notes)
    assert 0 <= result.task_scores["cancer"] <= 1


def test_pgfc_selection_depends_on_the_prompt(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    def regions(prompt: str) -> list[tuple[float, ...]]:
        result = omnipath.analyze(AnalysisRequest(textured_slide, prompt, max_new_tokens=1)).run()
        return [r.l0_box for r in result.regions]

    first = regions("Where are the crowded purple nuclei of the carcinoma?")
    second = regions("Is the fat pale and empty, benign adipose tissue?")
    assert first != second


def test_cancelling_stops_between_tokens(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    stream = omnipath.analyze(AnalysisRequest(textured_slide, "Describe.", max_new_tokens=40))
    received = []
    for piece in stream:
        received.append(piece)
        if len(received) == 2:
            stream.cancel()
    result = stream.result
    assert result.cancelled
    assert result.generated_tokens < 40
    assert result.text == "".join(received)


@pytest.mark.parametrize("slide_name", ["textured_slide", "large_slide"])
def test_visual_tokens_never_exceed_the_budget(omnipath, slide_name: str, request: pytest.FixtureRequest) -> None:  # noqa: ANN001
    slide = request.getfixturevalue(slide_name)
    result = omnipath.analyze(AnalysisRequest(slide, "Describe.", max_new_tokens=1)).run()
    assert 0 < result.visual_tokens <= result.visual_token_budget
    if slide_name == "large_slide":  # more coarse tiles than coarse slots: the overview was pooled
        assert result.tissue_tiles["5x"] > omnipath.config.coarse_token_slots


def test_pooling_fits_any_number_of_tiles_into_the_slots() -> None:
    cols, rows = np.meshgrid(np.arange(300), np.arange(200))
    tile_cr = np.stack([cols.ravel(), rows.ravel()], axis=1)
    tokens = torch.randn(len(tile_cr), 8)
    for slots in (1, 7, 47, 500):
        pooled, _ = pool_to_slots(tokens, tile_cr, slots)
        assert 1 <= pooled.shape[0] <= slots


def test_segmentation_returns_polygons_in_level0_pixels(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    result = omnipath.analyze(AnalysisRequest(textured_slide, "Segment the tumour.", task="segmentation",
                                              max_new_tokens=1)).run()
    assert result.polygons
    for polygon in result.polygons:
        outer = polygon[0]
        assert outer[0] == outer[-1]
        assert all(0 <= x <= 4096 and 0 <= y <= 2048 for x, y in outer)


def test_roi_restricts_the_regions(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    roi = (0.0, 0.0, 1024.0, 1024.0)
    result = omnipath.analyze(AnalysisRequest(textured_slide, "Describe.", roi=roi, max_new_tokens=1)).run()
    assert result.regions
    assert all(r.l0_box[0] < 1024 and r.l0_box[1] < 1024 for r in result.regions)


def test_unknown_mpp_is_handled_and_said(omnipath, no_mpp_slide: Path) -> None:  # noqa: ANN001
    result = omnipath.analyze(AnalysisRequest(no_mpp_slide, "Describe.", max_new_tokens=1)).run()
    assert any("no usable microns per pixel" in note for note in result.notes)
    assert result.visual_tokens <= result.visual_token_budget


def test_bad_requests_are_clear_errors(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    with pytest.raises(InferenceError, match="prompt is empty"):
        omnipath.analyze(AnalysisRequest(textured_slide, "   "))
    with pytest.raises(InferenceError, match="unknown task"):
        omnipath.analyze(AnalysisRequest(textured_slide, "Describe.", task="astrology"))
