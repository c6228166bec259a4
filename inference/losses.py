"""Mixed-task training losses of OmniPath: next-token, task heads, masks (BCE + Dice).

Every label tensor uses ``IGNORE_INDEX`` (-100, the transformers convention) for "no label here"; a
term whose labels are all ignored is skipped (absent from the returned dict), so one batch can mix
examples of different tasks. Shapes: ``B`` rows, ``T`` text tokens, ``N`` coarse tiles, ``r`` =
``config.mask_resolution``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from inference.config import TASK_LABELS
from inference.outputs import TaskHeadsOutput

IGNORE_INDEX = -100
DICE_SMOOTH = 1.0
"""Added to the Dice numerator and denominator: an empty mask predicted empty scores 0, not 0/0."""


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    """Mean next-token cross entropy over supervised tokens, or None when no token is supervised.

    logits: ``(B, T, vocab)``; labels: ``(B, T)`` token ids aligned with the input (shifted here), with
    ``IGNORE_INDEX`` on the prompt, the image placeholders and the padding.
    """
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match the input ids {tuple(logits.shape[:2])}")
    targets = labels[:, 1:].to(logits.device)
    supervised = int((targets != IGNORE_INDEX).sum())
    if supervised == 0:
        return None
    summed = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                             ignore_index=IGNORE_INDEX, reduction="sum")
    return summed / supervised


def task_head_losses(heads: TaskHeadsOutput, task_labels: torch.Tensor, num_grades: int) -> dict[str, torch.Tensor]:
    """One loss per task head that has at least one label in the batch.

    heads: logits ``(B, 1)`` (cancer, vascular / neural invasion) and ``(B, num_grades)`` (grade).
    task_labels: ``(B, 4)`` integers, columns in ``TASK_LABELS`` order: cancer, vascular_invasion and
    neural_invasion are 0 / 1 (binary cross entropy), grade is the class index ``0 .. num_grades - 1``
    (grade 1 = index 0; cross entropy); ``IGNORE_INDEX`` where a row has no such label.
    """
    if task_labels.dim() != 2 or task_labels.shape[1] != len(TASK_LABELS):
        raise ValueError(f"task_labels must be (B, {len(TASK_LABELS)}) with columns {TASK_LABELS}, "
                         f"got {tuple(task_labels.shape)}")
    losses: dict[str, torch.Tensor] = {}
    for column, name in enumerate(TASK_LABELS):
        logits = getattr(heads, name)
        target = task_labels[:, column].to(logits.device).long()
        present = target != IGNORE_INDEX
        if not bool(present.any()):
            continue
        target, logits = target[present], logits[present].float()
        classes = num_grades if name == "grade" else 2
        if bool(((target < 0) | (target >= classes)).any()):
            raise ValueError(f"{name} labels must be in 0..{classes - 1} or {IGNORE_INDEX}, "
                             f"got {sorted(set(target.tolist()))}")
        if name == "grade":
            losses[name] = F.cross_entropy(logits, target)
        else:
            losses[name] = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    return losses


def mask_losses(mask_logits: torch.Tensor, mask_labels: torch.Tensor, tile_mask: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
    """``mask_bce`` and ``mask_dice`` over the labelled mask pixels, or ``{}`` when none is labelled.

    mask_logits: ``(B, N, r, r)`` from the mask decoder. mask_labels: same shape, targets in [0, 1]
    (1 = lesion) or ``IGNORE_INDEX``; tile_mask: ``(B, N)`` bool, False on padding tiles (ignored).
    BCE is the mean over labelled pixels; Dice is soft Dice per row over its labelled pixels, averaged
    over the rows that have any.
    """
    if mask_labels.shape != mask_logits.shape:
        raise ValueError(f"mask_labels {tuple(mask_labels.shape)} must match the mask logits "
                         f"{tuple(mask_logits.shape)} (B, tiles, mask_resolution, mask_resolution)")
    target = mask_labels.to(mask_logits.device).float()
    present = target != IGNORE_INDEX
    if tile_mask is not None:
        present &= tile_mask.to(mask_logits.device)[..., None, None]
    if not bool(present.any()):
        return {}
    if bool(((target[present] < 0) | (target[present] > 1)).any()):
        raise ValueError(f"mask labels must be in [0, 1] or {IGNORE_INDEX}")
    logits = mask_logits.float()
    bce = F.binary_cross_entropy_with_logits(logits[present], target[present])
    weight = present.float()
    probs = torch.sigmoid(logits) * weight
    target = torch.where(present, target, torch.zeros_like(target))
    intersection = (probs * target).flatten(1).sum(1)
    total = probs.flatten(1).sum(1) + target.flatten(1).sum(1)
    dice = 1 - (2 * intersection + DICE_SMOOTH) / (total + DICE_SMOOTH)
    rows = present.flatten(1).any(1)
    return {"mask_bce": bce, "mask_dice": dice[rows].mean()}


def combine(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor | None:
    """``Σ weights[term] · losses[term]`` over the terms present, or None when there is none."""
    if not losses:
        return None
    return torch.stack([weights[term] * value for term, value in losses.items()]).sum()
