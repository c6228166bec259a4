"""OmniPath inference: encoders, multi-scale feature extraction, MGFE, PGFC and streaming generation.

Imports ``slides/`` and never Django. Heavy modules (torch, transformers) load when first used, so
``from inference import InferenceError`` stays cheap.
"""

from __future__ import annotations

from inference.errors import InferenceError

__all__ = ["InferenceError"]
