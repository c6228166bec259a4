"""Mixed-task losses: each term reaches the right parameters, absent labels skip their term, weights apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoTokenizer

from inference.config import LOSS_TERMS, OmniPathConfig
from inference.losses import IGNORE_INDEX, mask_losses
from inference.modeling_omnipath import OmniPathForConditionalGeneration
from inference.tiny import tiny_omnipath_config
from inference.training import collate

HEADS = ("cancer", "grade", "vascular_invasion", "neural_invasion")
LABEL_VALUE = {"cancer": 1, "grade": 3, "vascular_invasion": 0, "neural_invasion": 1}


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> OmniPathForConditionalGeneration:
    return OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir).train()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):  # noqa: ANN201
    return AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)


def gradients(model: OmniPathForConditionalGeneration, batch: dict) -> tuple[object, dict[str, torch.Tensor | None]]:
    model.zero_grad(set_to_none=True)
    outputs = model(**batch)
    outputs.loss.backward()
    return outputs, {name: p.grad for name, p in model.named_parameters()}


def moved(grads: dict[str, torch.Tensor | None], prefix: str) -> bool:
    """Whether any parameter under ``prefix`` got a nonzero gradient."""
    found = [g for name, g in grads.items() if name.startswith(prefix)]
    assert found, f"no parameter named {prefix}*"
    return any(g is not None and bool(g.abs().sum() > 0) for g in found)


@pytest.mark.parametrize("head", HEADS)
def test_a_task_head_loss_trains_its_head_and_mgfe_only(model, tokenizer, make_example, head: str) -> None:  # noqa: ANN001
    example = make_example(task="grading" if head == "grade" else "cancer_detection", **{head: LABEL_VALUE[head]})
    outputs, grads = gradients(model, collate([example], tokenizer, model.config))
    assert set(outputs.losses) == {head}
    assert torch.isfinite(outputs.loss) and outputs.loss > 0
    assert outputs.logits is None  # no answer in the batch: the language model did not run
    assert moved(grads, f"task_heads.{head}.")
    assert moved(grads, "mgfe.") and moved(grads, "fusion.")
    for other in HEADS:
        if other != head:
            assert not moved(grads, f"task_heads.{other}.")
    for unrelated in ("mask_decoder.", "projector.", "language_model.", "region_scorer.", "general_encoder.",
                      "pathology_encoder."):
        assert not moved(grads, unrelated), unrelated


def test_the_mask_loss_trains_the_mask_decoder_and_the_query_not_the_heads(model, tokenizer, make_example) -> None:  # noqa: ANN001
    r = model.config.mask_resolution
    mask = (torch.rand(6, r, r, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    outputs, grads = gradients(model, collate([make_example(task="segmentation", mask=mask)], tokenizer,
                                              model.config))
    assert set(outputs.losses) == {"mask_bce", "mask_dice"}
    assert all(torch.isfinite(v) for v in outputs.losses.values())
    assert outputs.mask_logits.shape == (1, 6, r, r)
    assert moved(grads, "mask_decoder.") and moved(grads, "mgfe.film.")
    assert moved(grads, "region_scorer.prompt_proj.") and moved(grads, "region_scorer.task_proj.")
    assert not moved(grads, "task_heads.") and not moved(grads, "projector.")
    assert not moved(grads, "language_model.model.layers.") and not moved(grads, "language_model.lm_head.")


def test_the_lm_loss_trains_the_language_model_and_projector_not_the_heads(model, tokenizer, make_example) -> None:  # noqa: ANN001
    example = make_example(answer="Invasive carcinoma, grade 2.")
    outputs, grads = gradients(model, collate([example], tokenizer, model.config))
    assert set(outputs.losses) == {"lm"}
    assert torch.isfinite(outputs.loss)
    assert moved(grads, "language_model.model.layers.") and moved(grads, "projector.")
    assert moved(grads, "mgfe.")  # the task-pooled slide token is a visual token
    assert not moved(grads, "task_heads.") and not moved(grads, "mask_decoder.")


def test_a_mixed_batch_takes_each_term_from_the_rows_that_have_its_label(model, tokenizer, make_example) -> None:  # noqa: ANN001
    r = model.config.mask_resolution
    examples = [
        make_example(tiles=5, fine=3, task="cancer_detection", answer="Yes.", cancer=1),
        make_example(tiles=9, fine=0, task="grading", grade=2),
        make_example(tiles=4, fine=1, task="segmentation", mask=torch.ones(4, r, r)),
        make_example(tiles=7, fine=2, task="describe", answer="Fat and stroma."),
    ]
    batch = collate(examples, tokenizer, model.config)
    with torch.no_grad():
        outputs = model(**batch)
    assert set(outputs.losses) == {"lm", "cancer", "grade", "mask_bce", "mask_dice"}
    heads = outputs.task_logits
    assert torch.allclose(outputs.losses["cancer"],
                          F.binary_cross_entropy_with_logits(heads.cancer[0, 0], torch.tensor(1.0)))
    assert torch.allclose(outputs.losses["grade"], F.cross_entropy(heads.grade[1:2], torch.tensor([1])))
    only_masked = mask_losses(outputs.mask_logits[2:3, :4], torch.ones(1, 4, r, r))
    assert torch.allclose(outputs.losses["mask_bce"], only_masked["mask_bce"])
    assert torch.allclose(outputs.losses["mask_dice"], only_masked["mask_dice"])
    weights = model.config.loss_weights
    assert torch.allclose(outputs.loss, sum(weights[k] * v for k, v in outputs.losses.items()))


def test_padding_never_changes_a_row(model, tokenizer, make_example) -> None:  # noqa: ANN001
    short = make_example(tiles=3, fine=1, task="cancer_detection", answer="No.", cancer=0)
    long = make_example(tiles=12, fine=5, task="grading", answer="Grade three, with many mitoses.", grade=3)
    with torch.no_grad():
        alone = model(**collate([short], tokenizer, model.config))
        both = model(**collate([short, long], tokenizer, model.config))
    assert torch.allclose(alone.task_logits.cancer[0], both.task_logits.cancer[0], atol=1e-5)
    assert torch.allclose(alone.mask_logits[0], both.mask_logits[0, :3], atol=1e-5)
    length = alone.logits.shape[1]
    assert torch.allclose(alone.logits[0], both.logits[0, :length], atol=1e-4)


def test_labels_that_are_all_ignored_skip_their_term(model, tokenizer, make_example) -> None:  # noqa: ANN001
    batch = collate([make_example(answer="Benign.", cancer=0)], tokenizer, model.config)
    r = model.config.mask_resolution
    batch["mask_labels"] = torch.full((1, 6, r, r), float(IGNORE_INDEX))
    with torch.no_grad():
        with_cancer = model(**batch)
        batch["labels"] = torch.full_like(batch["labels"], IGNORE_INDEX)
        batch["task_labels"] = torch.full_like(batch["task_labels"], IGNORE_INDEX)
        nothing = model(**batch)
    assert set(with_cancer.losses) == {"lm", "cancer"}
    assert nothing.loss is None and nothing.losses is None
    assert nothing.logits is not None and nothing.task_logits is not None


def test_mask_loss_is_bce_plus_dice_over_the_labelled_pixels() -> None:
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]])  # (B=1, N=2, 2, 2)
    right = (target * 2 - 1) * 30
    perfect = mask_losses(right, target)
    assert perfect["mask_bce"] < 1e-6 and perfect["mask_dice"] < 1e-6
    wrong = mask_losses(-right, target)
    assert wrong["mask_bce"] > 20 and wrong["mask_dice"] > 0.6
    ignored = target.clone()
    ignored[0, 1] = IGNORE_INDEX  # the second tile has no label: predicting nonsense there costs nothing
    noisy = right.clone()
    noisy[0, 1] = 30
    assert mask_losses(noisy, ignored)["mask_bce"] < 1e-6
    padding = torch.tensor([[True, False]])
    assert mask_losses(noisy, target, padding)["mask_dice"] < 1e-6
    assert mask_losses(right, torch.full_like(target, IGNORE_INDEX)) == {}


def test_out_of_range_labels_are_clear_errors(model, tokenizer, make_example) -> None:  # noqa: ANN001
    batch = collate([make_example(cancer=1)], tokenizer, model.config)
    batch["task_labels"][0, 1] = model.config.num_grades  # grade indices are 0 .. num_grades - 1
    with pytest.raises(ValueError, match="grade labels"):
        model(**batch)
    with pytest.raises(ValueError, match="grade must be"):
        collate([make_example(grade=0)], tokenizer, model.config)
    with pytest.raises(ValueError, match="mask must be"):
        collate([make_example(mask=torch.ones(2, 2, 2))], tokenizer, model.config)


def test_loss_weights_are_applied_and_survive_save_and_load(tiny_model_dir: Path, tmp_path: Path, tokenizer,  # noqa: ANN001
                                                            make_example) -> None:
    model = OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir)
    model.config.loss_weights = {**model.config.loss_weights, "lm": 0.25, "cancer": 3.0, "mask_dice": 0.0}
    model.save_pretrained(tmp_path)
    again = OmniPathForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert again.config.loss_weights == model.config.loss_weights
    r = again.config.mask_resolution
    batch = collate([make_example(answer="Yes.", cancer=1, mask=torch.zeros(6, r, r))], tokenizer, again.config)
    with torch.no_grad():
        outputs = again(**batch)
    terms = outputs.losses
    expected = 0.25 * terms["lm"] + 3.0 * terms["cancer"] + terms["mask_bce"] + 0.0 * terms["mask_dice"]
    assert torch.allclose(outputs.loss, expected)


def test_config_fills_and_checks_loss_weights() -> None:
    config = tiny_omnipath_config(image_token_id=3, loss_weights={"grade": 0.5})
    assert config.loss_weights == {term: (0.5 if term == "grade" else 1.0) for term in LOSS_TERMS}
    assert OmniPathConfig.from_dict(config.to_dict()).loss_weights == config.loss_weights
    with pytest.raises(ValueError, match="unknown loss_weights terms"):
        tiny_omnipath_config(image_token_id=3, loss_weights={"gleason": 1.0})
    with pytest.raises(ValueError, match="finite and >= 0"):
        tiny_omnipath_config(image_token_id=3, loss_weights={"lm": -1.0})


def test_forward_refuses_labels_it_cannot_use(model) -> None:  # noqa: ANN001
    ids = torch.tensor([[model.config.image_token_id, 40]])
    visual = torch.zeros(1, 1, model.config.hidden_size)
    with pytest.raises(ValueError, match="need slides"):
        model(ids, visual, task_labels=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="not both or neither"):
        model(ids)
