"""PathDesk's whole-slide image layer: open slides, read metadata and pixels, serve DeepZoom tiles,
find tissue. Pure Python over OpenSlide; imports nothing else of ours and never Django.

    import slides
    with slides.open_slide(path) as s:          # raises slides.SlideError with a readable reason
        s.metadata.to_dict()
        slides.DeepZoom(s).get_tile_jpeg(dz_level, tile_col, tile_row)
        slides.detect_tissue(s).fraction
"""

from __future__ import annotations

from slides.cache import SlideCache
from slides.deepzoom import DeepZoom
from slides.errors import SlideError, TileNotFound
from slides.metadata import SlideMetadata
from slides.slide import Slide, open_slide
from slides.tissue import TissueMask, detect_tissue

__all__ = [
    "DeepZoom",
    "Slide",
    "SlideCache",
    "SlideError",
    "SlideMetadata",
    "TileNotFound",
    "TissueMask",
    "detect_tissue",
    "open_slide",
]
