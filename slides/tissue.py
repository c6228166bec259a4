"""Tissue detection: which parts of a slide hold tissue rather than bare glass."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from slides.slide import Slide

#: Saturation (0–255) below which a pixel is glass whatever Otsu says: bare glass, JPEG noise and grey
#: scanner background stay under ~10; the palest eosin is above ~25.
MIN_SATURATION = 20


@dataclass(frozen=True)
class TissueMask:
    """Where the tissue is, on a low-resolution grid.

    mask: bool (H, W), True = tissue; mask pixel (row, col) covers level-0 pixels
    [col·downsample, (col+1)·downsample) × [row·downsample, (row+1)·downsample).
    downsample: level-0 px per mask px (float, ≥ 1).
    fraction: share of the slide's area that is tissue, 0..1.
    threshold: saturation cut-off used (0–255).
    """

    mask: np.ndarray
    downsample: float
    fraction: float
    threshold: int

    def to_image(self) -> Image.Image:
        """The mask as an 8-bit greyscale picture: 255 = tissue, 0 = glass."""
        return Image.fromarray(self.mask.astype(np.uint8) * 255, mode="L")

    def to_png(self) -> bytes:
        """The mask as PNG bytes (see ``to_image``)."""
        buf = io.BytesIO()
        self.to_image().save(buf, "PNG", optimize=True)
        return buf.getvalue()


def otsu_threshold(values: np.ndarray) -> int:
    """Otsu's threshold (0–255) of uint8 ``values``: pixels > threshold form the brighter class."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    levels = np.arange(256, dtype=np.float64)
    weight0 = np.cumsum(hist)
    weight1 = total - weight0
    mean_sum = np.cumsum(hist * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean0 = mean_sum / weight0
        mean1 = (mean_sum[-1] - mean_sum) / weight1
        between = weight0 * weight1 * (mean0 - mean1) ** 2
    between = np.nan_to_num(between, nan=0.0, posinf=0.0, neginf=0.0)
    return int(np.argmax(between))


def detect_tissue(slide: Slide, *, max_size: int = 2048, min_saturation: int = MIN_SATURATION) -> TissueMask:
    """Tissue mask of ``slide`` from a low-resolution image (long side ≤ ``max_size`` px).

    Method: HSV saturation, Otsu's threshold (never below ``min_saturation``, so a blank slide stays
    blank), then a 5×5 median filter to remove specks and pinholes. Pen marks that are saturated count as
    tissue; black debris does not (black has no saturation).
    """
    thumb = slide.get_thumbnail((max_size, max_size))
    saturation = np.asarray(thumb.convert("HSV").getchannel("S"))
    threshold = max(otsu_threshold(saturation), min_saturation)
    raw = Image.fromarray((saturation > threshold).astype(np.uint8) * 255, mode="L")
    mask = np.asarray(raw.filter(ImageFilter.MedianFilter(5))) > 127
    l0_w, l0_h = slide.dimensions
    downsample = (l0_w / thumb.width + l0_h / thumb.height) / 2
    return TissueMask(mask=mask, downsample=downsample, fraction=float(mask.mean()), threshold=threshold)
