"""Training on cached features: the utility overfits a tiny mixed batch; slide examples match inference."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from inference.analysis import AnalysisRequest, AnalysisResult
from inference.masks import rasterize_polygons
from inference.modeling_omnipath import OmniPathForConditionalGeneration
from inference.omnipath_backend import _polygons
from inference.training import collate, example_from_slide, train_steps


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):  # noqa: ANN201
    return AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)


def test_a_few_dozen_steps_overfit_a_tiny_mixed_batch(tiny_model_dir: Path, tokenizer, make_example) -> None:  # noqa: ANN001
    model = OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir)
    r = model.config.mask_resolution
    mask = (torch.rand(4, r, r, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    examples = [
        make_example(tiles=4, fine=2, task="cancer_detection", question="Carcinoma?", answer="Yes, carcinoma.",
                     cancer=1),
        make_example(tiles=4, fine=2, task="grading", question="Grade?", answer="Grade 3.", grade=3),
        make_example(tiles=4, fine=0, task="segmentation", question="Segment the tumour.", mask=mask),
        make_example(tiles=4, fine=1, task="vascular_invasion", question="Invasion?", vascular_invasion=0,
                     neural_invasion=1),
    ]
    before = {name: p.detach().clone() for name, p in model.named_parameters() if name.startswith("general_encoder.")}
    started = time.perf_counter()
    history = train_steps(model, tokenizer, examples, steps=24, learning_rate=1e-3)
    elapsed = time.perf_counter() - started
    first, last = history[0], history[-1]
    assert len(history) == 24 and not model.training
    assert set(first.losses) == {"lm", "cancer", "grade", "vascular_invasion", "neural_invasion", "mask_bce",
                                 "mask_dice"}
    assert last.loss < 0.1 * first.loss, [round(h.loss, 3) for h in history]
    for term, value in first.losses.items():
        assert last.losses[term] < value, term
    for name, value in before.items():  # the encoders are frozen: examples hold their outputs
        assert torch.equal(value, dict(model.named_parameters())[name])
    print(f"24 steps in {elapsed:.1f}s; loss {first.loss:.3f} -> {last.loss:.4f}")


def test_batches_cycle_through_the_examples(tiny_model_dir: Path, tokenizer, make_example) -> None:  # noqa: ANN001
    model = OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir)
    examples = [make_example(cancer=1), make_example(task="grading", grade=2), make_example(neural_invasion=0)]
    history = train_steps(model, tokenizer, examples, steps=3, batch_size=1, learning_rate=1e-4)
    assert sorted(tuple(h.losses) for h in history) == [("cancer",), ("grade",), ("neural_invasion",)]
    with pytest.raises(ValueError, match="without any label"):
        train_steps(model, tokenizer, [make_example()], steps=1)


def test_an_example_from_a_slide_gives_the_model_the_inference_visual_tokens(
    omnipath, textured_slide: Path, tiny_model_dir: Path, tokenizer  # noqa: ANN001
) -> None:
    request = AnalysisRequest(textured_slide, "Where is the tumour?", task="segmentation")
    tile = omnipath.config.tile_size * 4  # level-0 px of a 5× tile at 0.5 µm/px
    lesion = [[[0, 0], [3 * tile, 0], [3 * tile, 2 * tile], [0, 2 * tile], [0, 0]]]
    example = example_from_slide(omnipath, request, answer="A tumour on the left.", cancer=1,
                                 mask_polygons=[lesion])
    scratch = AnalysisResult(text="", model="", backend="", task=request.task)
    visual = omnipath.prepare(request, scratch, threading.Event())

    batch = collate([example], tokenizer, omnipath.config)
    assert int((batch["input_ids"] == omnipath.config.image_token_id).sum()) == visual.shape[1]
    with torch.no_grad():
        built = omnipath.model.build_visual_tokens(batch["slides"])
    assert built.visual_tokens.shape == visual.shape
    assert torch.allclose(built.visual_tokens, visual, atol=1e-4)

    inside = (example.tile_cr[:, 0] < 3) & (example.tile_cr[:, 1] < 2)
    assert example.mask[torch.from_numpy(inside)].eq(1).all() and example.mask[torch.from_numpy(~inside)].eq(0).all()
    model = OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir)  # never train the shared one
    history = train_steps(model, tokenizer, [example], steps=1)
    assert set(history[0].losses) == {"lm", "cancer", "mask_bce", "mask_dice"}


def test_rasterized_polygons_invert_segmentation_polygons(omnipath, textured_slide: Path) -> None:  # noqa: ANN001
    from slides import open_slide
    from slides.tiling import tissue_tile_grid

    with open_slide(textured_slide) as slide:
        grid = tissue_tile_grid(slide, 5, 64)
    r = omnipath.config.mask_resolution
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(len(grid), r, r)).astype(np.float32))
    polygons = _polygons(grid, logits)
    assert polygons
    assert np.array_equal(rasterize_polygons(grid, polygons, r), (logits > 0).numpy().astype(np.float32))
