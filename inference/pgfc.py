"""Prompt-guided detail feature completion (PGFC): which regions to re-read, and fitting the token budget.

Shapes: ``N`` coarse tiles, ``d`` visual-token width. Regions are coarse tiles (their level-0 boxes).
"""

from __future__ import annotations

import numpy as np
import torch


def select_regions(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` best-scoring regions, best first (ties: lower index first). ``(N,)`` → ``(min(k, N),)``."""
    k = min(k, scores.shape[0])
    order = sorted(range(scores.shape[0]), key=lambda i: (-float(scores[i]), i))
    return torch.tensor(order[:k], dtype=torch.long)


def pool_to_slots(tokens: torch.Tensor, tile_cr: np.ndarray, slots: int) -> tuple[torch.Tensor, int]:
    """Average spatial neighbours until at most ``slots`` tokens remain.

    tokens: ``(N, d)``; tile_cr: ``(N, 2)`` (tile_col, tile_row). Tiles are merged into square bins of
    ``f × f`` grid cells, ``f`` growing from 1 until the number of non-empty bins fits, so the overview
    keeps its spatial layout however large the slide. Returns (``(M, d)`` with M ≤ slots, f).
    """
    if slots < 1:
        raise ValueError("slots must be >= 1")
    if tokens.shape[0] <= slots:
        return tokens, 1
    cr = np.asarray(tile_cr, dtype=np.int64)
    # A dense grid needs bins of about sqrt(N / slots) cells a side; start just below that.
    factor = max(1, int(np.sqrt(tokens.shape[0] / slots)) - 1)
    while True:
        factor += 1
        bins = cr // factor
        keys, inverse = np.unique(bins[:, 1] * (int(bins[:, 0].max()) + 1) + bins[:, 0], return_inverse=True)
        if len(keys) <= slots:
            break
    index = torch.from_numpy(inverse.reshape(-1)).to(tokens.device)
    summed = torch.zeros(len(keys), tokens.shape[1], dtype=tokens.dtype, device=tokens.device)
    summed.index_add_(0, index, tokens)
    counts = torch.bincount(index, minlength=len(keys)).clamp(min=1).to(tokens.dtype)
    return summed / counts[:, None], factor
