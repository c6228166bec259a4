"""Backends by name: what the web app and the CLI call (see :mod:`inference.analysis` for the interface)."""

from __future__ import annotations

from pathlib import Path

from inference.analysis import Backend
from inference.errors import InferenceError
from inference.feature_store import FeatureStore

BACKENDS = ("omnipath", "hf-vlm")


def load_backend(
    kind: str,
    model_dir: str | Path,
    *,
    device: str | None = None,
    store: FeatureStore | None = None,
    selector_dir: str | Path | None = None,
) -> Backend:
    """Load ``kind`` ("omnipath" or "hf-vlm") from a local directory, once; reuse it for many analyses.

    selector_dir: for ``hf-vlm``, an OmniPath checkpoint whose PGFC picks the high-resolution crops.
    """
    if kind == "omnipath":
        from inference.omnipath_backend import OmniPathBackend

        return OmniPathBackend(model_dir, device=device, store=store)
    if kind == "hf-vlm":
        from inference.hf_vlm import HFVLMBackend

        return HFVLMBackend(model_dir, device=device, selector_dir=selector_dir, store=store)
    raise InferenceError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
