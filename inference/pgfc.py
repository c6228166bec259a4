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


def overview_bins(tile_cr: np.ndarray, slots: int) -> tuple[np.ndarray, int, int]:
    """Spatial bins that fit ``N`` tiles into at most ``slots`` overview tokens.

    tile_cr: ``(N, 2)`` (tile_col, tile_row). Tiles are merged into square bins of ``f × f`` grid cells,
    ``f`` growing from 1 until the number of non-empty bins fits, so the overview keeps its spatial layout
    however large the slide. Returns (``(N,)`` bin of each tile, number of bins M ≤ slots, f); with
    ``N ≤ slots`` every tile is its own bin (f = 1).
    """
    if slots < 1:
        raise ValueError("slots must be >= 1")
    cr = np.asarray(tile_cr, dtype=np.int64).reshape(-1, 2)
    if cr.shape[0] <= slots:
        return np.arange(cr.shape[0]), cr.shape[0], 1
    # A dense grid needs bins of about sqrt(N / slots) cells a side; start just below that.
    factor = max(1, int(np.sqrt(cr.shape[0] / slots)) - 1)
    while True:
        factor += 1
        bins = cr // factor
        keys, inverse = np.unique(bins[:, 1] * (int(bins[:, 0].max()) + 1) + bins[:, 0], return_inverse=True)
        if len(keys) <= slots:
            return inverse.reshape(-1), len(keys), factor


def pool_to_slots(tokens: torch.Tensor, tile_cr: np.ndarray, slots: int) -> tuple[torch.Tensor, int]:
    """Average spatial neighbours (``overview_bins``) until at most ``slots`` tokens remain.

    tokens: ``(N, d)``; tile_cr: ``(N, 2)``. Returns (``(M, d)`` with M ≤ slots, bin edge f in tiles).
    """
    if tokens.shape[0] <= slots:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        return tokens, 1
    inverse, n_bins, factor = overview_bins(tile_cr, slots)
    index = torch.from_numpy(inverse).to(tokens.device)
    summed = torch.zeros(n_bins, tokens.shape[1], dtype=tokens.dtype, device=tokens.device)
    summed.index_add_(0, index, tokens)
    counts = torch.bincount(index, minlength=n_bins).clamp(min=1).to(tokens.dtype)
    return summed / counts[:, None], factor
