"""Output dataclasses of the OmniPath model. ``N`` = tiles, ``V`` = visual tokens, ``d`` = ``config.hidden_size``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class MGFEOutput(ModelOutput):
    """Mixed task-guided feature enhancement of one slide at one or more scales.

    tokens: ``(N, d)`` task-conditioned (FiLM) tile tokens, same order as the input tiles.
    pooled: ``(d,)`` task-conditioned attention-pooled slide token.
    attention: ``(N,)`` pooling weights (sum to 1): which tiles the task looked at.
    """

    tokens: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    attention: torch.Tensor | None = None


@dataclass
class TaskHeadsOutput(ModelOutput):
    """Logits of the mixed-supervision task heads for one slide.

    cancer: ``(1,)`` logit of "carcinoma present". grade: ``(num_grades,)`` logits (index 0 = grade 1).
    vascular_invasion / neural_invasion: ``(1,)`` logits. A batch of slides has a leading ``B`` dim.
    """

    cancer: torch.Tensor | None = None
    grade: torch.Tensor | None = None
    vascular_invasion: torch.Tensor | None = None
    neural_invasion: torch.Tensor | None = None


@dataclass
class VisualTokensOutput(ModelOutput):
    """MGFE + PGFC of a batch of ``B`` slides given as features (:class:`inference.processing.SlideInputs`).

    visual_tokens: ``(B, V, d)`` [task-pooled slide token, pooled coarse overview, fine tokens] per row,
        zero-padded to the longest row. visual_mask: ``(B, V)`` bool, False on padding.
    pooled: ``(B, d)`` task-pooled slide tokens. attention: ``(B, N)`` pooling weights (0 on padding).
    task_logits: the task heads on ``pooled``, each ``(B, ·)``.
    mask_logits: ``(B, N, r, r)`` mask-decoder logits per coarse tile for the row's question.
    """

    visual_tokens: torch.Tensor | None = None
    visual_mask: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    attention: torch.Tensor | None = None
    task_logits: TaskHeadsOutput | None = None
    mask_logits: torch.Tensor | None = None


@dataclass
class OmniPathCausalLMOutput(ModelOutput):
    """Language-model pass over a prompt with visual tokens spliced in, plus the mixed-task losses.

    loss: scalar ``Σ config.loss_weights[term] · losses[term]`` over the terms that had labels (None
        when no term had any).
    losses: ``{term: scalar}`` of the terms computed, unweighted (``config.LOSS_TERMS``: ``lm``,
        ``cancer``, ``grade``, ``vascular_invasion``, ``neural_invasion``, ``mask_bce``, ``mask_dice``);
        a term without labels in the batch is absent.
    logits: ``(B, T, vocab)`` next-token logits (None when no text was given).
    task_logits / mask_logits: as in :class:`VisualTokensOutput`, when slide features were given.
    """

    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] | None = None
    logits: torch.Tensor | None = None
    task_logits: TaskHeadsOutput | None = None
    mask_logits: torch.Tensor | None = None
