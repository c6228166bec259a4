"""Model inputs of OmniPath: the prompt layout and the batched slide features of the MGFE/PGFC path.

The prompt layout is shared by inference (:mod:`inference.omnipath_backend`) and training
(:mod:`inference.training`), so the model is trained on exactly the text it is later asked with.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from inference.config import OmniPathConfig
from inference.pgfc import overview_bins


def prompt_text(task: str, question: str) -> str:
    """The text after the image placeholders; the answer follows it directly."""
    return f"\nTask: {task}\nQuestion: {question.strip()}\nAnswer:"


def prompt_ids(tokenizer: object, config: OmniPathConfig, task: str, question: str, visual_tokens: int) -> list[int]:
    """Token ids: BOS, ``visual_tokens`` image placeholders, then task and question (``prompt_text``)."""
    ids = tokenizer(prompt_text(task, question), add_special_tokens=False).input_ids  # type: ignore[operator]
    bos_id = tokenizer.bos_token_id  # type: ignore[attr-defined]
    bos = [bos_id] if bos_id is not None else []
    return bos + [config.image_token_id] * visual_tokens + ids


def visual_token_count(config: OmniPathConfig, tile_cr: np.ndarray, fine_tiles: int) -> int:
    """Visual tokens the model builds for ``N`` coarse tiles at ``tile_cr`` ``(N, 2)`` and ``fine_tiles`` fine
    tokens: the task-pooled slide token, the pooled coarse overview, the fine tokens (≤ the budget)."""
    _, overview, _ = overview_bins(tile_cr, config.coarse_token_slots)
    return 1 + overview + fine_tiles


@dataclass
class SlideInputs:
    """Encoder features of ``B`` slides (or regions), padded to the longest, for the MGFE/PGFC path.

    The encoders themselves stay out of this path: features are the cached class tokens
    (:mod:`inference.feature_store`), so training touches fusion, MGFE, heads, mask decoder, projector, LM.

    general_features / pathology_features: ``(B, N, Dg)`` / ``(B, N, Dp)`` coarse-tile class tokens.
    tile_mask: ``(B, N)`` bool, False on padding. tile_cr: ``(B, N, 2)`` int64 (tile_col, tile_row).
    task_ids: ``(B,)`` rows of the task embedding (``config.task_id``).
    query_ids / query_mask: ``(B, P)`` question token ids (no placeholders) and their padding mask; they
        make the PGFC / segmentation query.
    fine_general_features / fine_pathology_features: ``(B, M, Dg)`` / ``(B, M, Dp)`` the fine tiles whose
        tokens the LM sees (those PGFC kept); ``M`` may be 0. fine_mask: ``(B, M)`` bool.
    """

    general_features: torch.Tensor
    pathology_features: torch.Tensor
    tile_mask: torch.Tensor
    tile_cr: torch.Tensor
    task_ids: torch.Tensor
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    fine_general_features: torch.Tensor
    fine_pathology_features: torch.Tensor
    fine_mask: torch.Tensor

    def __post_init__(self) -> None:
        batch, tiles = self.tile_mask.shape
        fine = self.fine_mask.shape[1]
        expected = {
            "general_features": (batch, tiles), "pathology_features": (batch, tiles), "tile_cr": (batch, tiles),
            "task_ids": (batch,), "query_ids": (batch,), "query_mask": (batch,),
            "fine_general_features": (batch, fine), "fine_pathology_features": (batch, fine),
        }
        for name, leading in expected.items():
            shape = tuple(getattr(self, name).shape)
            if shape[: len(leading)] != leading:
                raise ValueError(f"SlideInputs.{name} has shape {shape}, expected leading dims {leading}")
        if not bool(self.tile_mask.any(dim=1).all()):
            raise ValueError("every row of SlideInputs needs at least one coarse tile")

    def to(self, device: torch.device | str) -> SlideInputs:
        return SlideInputs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})
