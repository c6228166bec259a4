"""Mixed-task training of OmniPath on cached features: examples → batches → optimizer steps.

An example is one slide (or region) with any subset of the supervision: an answer for the LM, task-head
labels, a lesion mask. A batch may mix them; the model skips the loss terms a batch has no labels for
(:mod:`inference.losses`). The vision encoders stay frozen: examples hold their cached class tokens (the
feature store's rows), so training touches fusion, MGFE, heads, PGFC query, mask decoder, projector and LM.

    examples = [example_from_slide(backend, AnalysisRequest(path, "Is there carcinoma?", "cancer_detection"),
                                   answer="Yes, invasive carcinoma.", cancer=1), ...]
    model = OmniPathForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)  # train in fp32
    history = train_steps(model, backend.tokenizer, examples, steps=100, batch_size=8)
    model.save_pretrained(out_dir)   # loss weights travel in config.json
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.utils import clip_grad_norm_

from inference.analysis import AnalysisRequest, AnalysisResult
from inference.config import TASK_LABELS, OmniPathConfig
from inference.losses import IGNORE_INDEX
from inference.masks import rasterize_polygons
from inference.modeling_omnipath import OmniPathForConditionalGeneration
from inference.processing import SlideInputs, prompt_ids, visual_token_count

FROZEN_PREFIXES = ("general_encoder.", "pathology_encoder.")
"""Parameters ``train_steps`` leaves alone: the encoders, whose outputs the examples already hold."""


@dataclass
class TrainingExample:
    """One slide (or region) and any subset of its labels; None means "no label of this kind".

    general_features / pathology_features: ``(N, Dg)`` / ``(N, Dp)`` coarse-tile class tokens (the feature
        store's rows). tile_cr: ``(N, 2)`` (tile_col, tile_row) of those tiles.
    task: a task name of ``config.tasks``; question: the prompt.
    answer: the text the LM should write after the prompt (an EOS is appended).
    fine_general_features / fine_pathology_features: ``(K, Dg)`` / ``(K, Dp)`` the fine tiles whose tokens
        the LM sees (those PGFC kept), K ≤ ``pgfc_top_k · fine_tokens_per_region``; None = none.
    cancer, vascular_invasion, neural_invasion: 0 or 1. grade: 1 .. ``num_grades``, as ``task_scores``
        reports it. mask: ``(N, r, r)`` lesion targets in [0, 1] per coarse tile at
        ``config.mask_resolution`` (``IGNORE_INDEX`` pixels are unlabelled), see ``rasterize_polygons``.
    """

    general_features: torch.Tensor
    pathology_features: torch.Tensor
    tile_cr: torch.Tensor | np.ndarray
    task: str
    question: str
    answer: str | None = None
    fine_general_features: torch.Tensor | None = None
    fine_pathology_features: torch.Tensor | None = None
    cancer: int | None = None
    grade: int | None = None
    vascular_invasion: int | None = None
    neural_invasion: int | None = None
    mask: torch.Tensor | None = None

    @property
    def tiles(self) -> int:
        return int(self.general_features.shape[0])

    @property
    def fine_tiles(self) -> int:
        return 0 if self.fine_general_features is None else int(self.fine_general_features.shape[0])

    def validate(self, config: OmniPathConfig) -> None:
        """Raise ``ValueError`` naming what does not fit ``config``."""
        problems = []
        if self.tiles < 1:
            problems.append("needs at least one coarse tile")
        if self.pathology_features.shape[0] != self.tiles or len(self.tile_cr) != self.tiles:
            problems.append("general_features, pathology_features and tile_cr need one row per coarse tile")
        if self.task not in config.tasks:
            problems.append(f"unknown task {self.task!r}")
        if (self.fine_general_features is None) != (self.fine_pathology_features is None) or (
                self.fine_pathology_features is not None and self.fine_pathology_features.shape[0] != self.fine_tiles):
            problems.append("fine_general_features and fine_pathology_features need the same rows")
        if self.fine_tiles > config.pgfc_top_k * config.fine_tokens_per_region:
            problems.append(f"{self.fine_tiles} fine tiles exceed pgfc_top_k * fine_tokens_per_region")
        for name in ("cancer", "vascular_invasion", "neural_invasion"):
            if getattr(self, name) not in (None, 0, 1):
                problems.append(f"{name} must be 0, 1 or None")
        if self.grade is not None and not 1 <= self.grade <= config.num_grades:
            problems.append(f"grade must be 1..{config.num_grades} or None")
        r = config.mask_resolution
        if self.mask is not None and tuple(self.mask.shape) != (self.tiles, r, r):
            problems.append(f"mask must be (tiles, {r}, {r}) = {(self.tiles, r, r)}, got {tuple(self.mask.shape)}")
        if problems:
            raise ValueError("invalid training example: " + "; ".join(problems))


def _label_index(example: TrainingExample, name: str) -> int:
    """Column ``name`` of ``task_labels``: the 0/1 label, grade - 1 (class index), or ``IGNORE_INDEX``."""
    value = getattr(example, name)
    if value is None:
        return IGNORE_INDEX
    return int(value) - 1 if name == "grade" else int(value)


def _pad(rows: Sequence[torch.Tensor], value: float = 0) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True, padding_value=value)


def collate(examples: Sequence[TrainingExample], tokenizer: Any, config: OmniPathConfig) -> dict[str, Any]:
    """Keyword arguments of ``OmniPathForConditionalGeneration.forward`` for a batch of examples.

    Text rows are the inference prompt (``inference.processing.prompt_ids``) plus the answer and EOS,
    right-padded; only answer tokens are supervised. Without any answer in the batch, ``input_ids`` is None
    and the forward pass skips the LM. ``task_labels`` / ``mask_labels`` are None when no example has one.
    """
    if not examples:
        raise ValueError("collate needs at least one example")
    for example in examples:
        example.validate(config)
    any_answer = any(e.answer is not None for e in examples)
    ids_rows, label_rows = [], []
    for example in examples:
        tile_cr = np.asarray(example.tile_cr, dtype=np.int64)
        prompt = prompt_ids(tokenizer, config, example.task, example.question,
                            visual_token_count(config, tile_cr, example.fine_tiles))
        answer: list[int] = []
        if example.answer is not None:
            answer = tokenizer(" " + example.answer.strip(), add_special_tokens=False).input_ids
            answer = answer + [tokenizer.eos_token_id]
        ids_rows.append(torch.tensor(prompt + answer))
        label_rows.append(torch.tensor([IGNORE_INDEX] * len(prompt) + answer))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = _pad(ids_rows, pad_id)
    lengths = torch.tensor([len(row) for row in ids_rows])
    attention_mask = (torch.arange(input_ids.shape[1])[None] < lengths[:, None]).long()

    def fine(example: TrainingExample, name: str, dim: int) -> torch.Tensor:
        value = getattr(example, name)
        return torch.zeros(0, dim) if value is None else torch.as_tensor(value).float()

    dim_g, dim_p = examples[0].general_features.shape[1], examples[0].pathology_features.shape[1]
    queries = [torch.tensor(tokenizer(e.question, add_special_tokens=False).input_ids, dtype=torch.long)
               for e in examples]
    slides = SlideInputs(
        general_features=_pad([torch.as_tensor(e.general_features).float() for e in examples]),
        pathology_features=_pad([torch.as_tensor(e.pathology_features).float() for e in examples]),
        tile_mask=_pad([torch.ones(e.tiles, dtype=torch.bool) for e in examples], False),
        tile_cr=_pad([torch.as_tensor(np.asarray(e.tile_cr, dtype=np.int64)) for e in examples]),
        task_ids=torch.tensor([config.task_id(e.task) for e in examples]),
        query_ids=_pad(queries, pad_id),
        query_mask=_pad([torch.ones(len(q), dtype=torch.bool) for q in queries], False),
        fine_general_features=_pad([fine(e, "fine_general_features", dim_g) for e in examples]),
        fine_pathology_features=_pad([fine(e, "fine_pathology_features", dim_p) for e in examples]),
        fine_mask=_pad([torch.ones(e.fine_tiles, dtype=torch.bool) for e in examples], False),
    )
    task_labels = torch.tensor([[_label_index(e, name) for name in TASK_LABELS] for e in examples], dtype=torch.long)
    mask_labels = None
    if any(e.mask is not None for e in examples):
        r = config.mask_resolution
        mask_labels = _pad([torch.as_tensor(e.mask).float() if e.mask is not None
                            else torch.full((e.tiles, r, r), float(IGNORE_INDEX)) for e in examples],
                           float(IGNORE_INDEX))
    return {
        "input_ids": input_ids if any_answer else None,
        "attention_mask": attention_mask if any_answer else None,
        "labels": _pad(label_rows, IGNORE_INDEX) if any_answer else None,
        "slides": slides,
        "task_labels": task_labels if bool((task_labels != IGNORE_INDEX).any()) else None,
        "mask_labels": mask_labels,
    }


@dataclass
class TrainingStep:
    """One optimizer step: the weighted total and each unweighted term (``config.LOSS_TERMS``) it had."""

    step: int
    loss: float
    losses: dict[str, float]


def trainable_parameters(model: OmniPathForConditionalGeneration) -> list[torch.nn.Parameter]:
    """Everything but the frozen encoders (``FROZEN_PREFIXES``) that requires a gradient."""
    return [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith(FROZEN_PREFIXES)]


def train_steps(
    model: OmniPathForConditionalGeneration,
    tokenizer: Any,
    examples: Sequence[TrainingExample],
    steps: int,
    *,
    batch_size: int | None = None,
    learning_rate: float = 1e-4,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = 1.0,
    optimizer: torch.optim.Optimizer | None = None,
    seed: int = 0,
) -> list[TrainingStep]:
    """Run ``steps`` optimizer steps on ``examples`` and return the loss of each.

    Batches of ``batch_size`` (default: all examples) go through the examples in an order shuffled by
    ``seed`` each pass. The optimizer defaults to AdamW over ``trainable_parameters``; pass one to keep its
    state across calls. Gradients are clipped to ``max_grad_norm`` (None: not clipped). The model is in
    training mode during the steps and back in its previous mode afterwards.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if not examples:
        raise ValueError("no examples to train on")
    batch_size = len(examples) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    parameters = trainable_parameters(model)
    optimizer = optimizer or torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    shuffle = random.Random(seed)
    order: list[int] = []
    history: list[TrainingStep] = []
    was_training = model.training
    model.train()
    try:
        for step in range(steps):
            if len(order) < batch_size:
                fresh = list(range(len(examples)))
                shuffle.shuffle(fresh)
                order.extend(fresh)
            batch, order = [examples[i] for i in order[:batch_size]], order[batch_size:]
            outputs = model(**collate(batch, tokenizer, model.config))
            if outputs.loss is None:
                raise ValueError("a batch without any label: every example needs an answer, a task label or a mask")
            optimizer.zero_grad(set_to_none=True)
            outputs.loss.backward()
            if max_grad_norm is not None:
                clip_grad_norm_(parameters, max_grad_norm)
            optimizer.step()
            history.append(TrainingStep(step, float(outputs.loss.detach()),
                                        {k: float(v.detach()) for k, v in (outputs.losses or {}).items()}))
    finally:
        model.train(was_training)
    return history


def example_from_slide(
    backend: Any,
    request: AnalysisRequest,
    *,
    answer: str | None = None,
    cancer: int | None = None,
    grade: int | None = None,
    vascular_invasion: int | None = None,
    neural_invasion: int | None = None,
    mask_polygons: Sequence[Sequence[Sequence[Sequence[float]]]] | None = None,
) -> TrainingExample:
    """A training example from a slide, through an ``OmniPathBackend``'s own coarse pass and PGFC choice.

    Features come from the backend's feature store and fine-tile cache (encoded on a miss), so the model is
    trained on the visual tokens it would build for ``request``. mask_polygons: lesion outlines as GeoJSON
    Polygon coordinates in level-0 px (the annotation convention), rasterised per coarse tile.
    """
    scratch = AnalysisResult(text="", model="", backend="", task=request.task)
    selection = backend.select(request, scratch, threading.Event())
    general, pathology = backend.general.cache_id, backend.pathology.cache_id
    kept = torch.tensor(selection.kept, dtype=torch.long)
    mask = None
    if mask_polygons is not None:
        mask = torch.from_numpy(rasterize_polygons(selection.grid, mask_polygons,
                                                   backend.config.mask_resolution)).float()
    # clone(): the backend works in inference mode, whose tensors autograd refuses to save
    return TrainingExample(
        general_features=selection.features[general].clone(),
        pathology_features=selection.features[pathology].clone(),
        tile_cr=selection.grid.tile_cr.copy(), task=request.task, question=request.prompt, answer=answer,
        fine_general_features=selection.fine_features[general][kept].clone(),
        fine_pathology_features=selection.fine_features[pathology][kept].clone(),
        cancer=cancer, grade=grade, vascular_invasion=vascular_invasion, neural_invasion=neural_invasion,
        mask=mask,
    )
