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

    cancer: ``(1,)`` logit of "carcinoma present". grade: ``(num_grades,)`` logits.
    vascular_invasion / neural_invasion: ``(1,)`` logits.
    """

    cancer: torch.Tensor | None = None
    grade: torch.Tensor | None = None
    vascular_invasion: torch.Tensor | None = None
    neural_invasion: torch.Tensor | None = None


@dataclass
class OmniPathCausalLMOutput(ModelOutput):
    """Language-model pass over a prompt with visual tokens spliced in.

    loss: scalar next-token loss when ``labels`` were given.
    logits: ``(B, T, vocab)`` next-token logits.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None

