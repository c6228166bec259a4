"""What the configured model can do, read from its checkpoint's config.json without loading it.

The web process validates requests against this (tasks) and labels answers from untrained weights
(`demo_weights`). GPU workers load the same directory (`OMNIPATH_MODEL`), so both agree on one checkpoint;
in docker-compose the model volume is mounted read-only on web and worker-gpu alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class ModelInfo:
    """The configured checkpoint. `problem` is set (and `tasks` empty) when it cannot be read."""

    backend: str
    path: str
    name: str
    tasks: tuple[str, ...]
    demo_weights: bool
    problem: str = ""

    @property
    def available(self) -> bool:
        return not self.problem

    def to_dict(self) -> dict:
        return {"backend": self.backend, "name": self.name, "tasks": list(self.tasks),
                "demo_weights": self.demo_weights, "available": self.available, "problem": self.problem or None}


_cache: dict[tuple[str, str, int], ModelInfo] = {}


def configured_model() -> ModelInfo:
    """The checkpoint named by OMNIPATH_MODEL / OMNIPATH_BACKEND, re-read when its config.json changes."""
    backend, path = settings.OMNIPATH_BACKEND, str(settings.OMNIPATH_MODEL)
    config_file = Path(path) / "config.json"
    try:
        mtime = config_file.stat().st_mtime_ns
    except OSError:
        return ModelInfo(backend, path, Path(path).name, (), False,
                         problem=f"model directory {path} has no config.json; set OMNIPATH_MODEL to a checkpoint "
                                 "directory (or create a tiny one with `python -m inference init-tiny DIR`)")
    key = (backend, path, mtime)
    if key not in _cache:
        _cache.clear()
        _cache[key] = _read(backend, path, config_file)
    return _cache[key]


def _read(backend: str, path: str, config_file: Path) -> ModelInfo:
    name = Path(path).resolve().name
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        return ModelInfo(backend, path, name, (), False, problem=f"cannot read {config_file}: {exc}")
    tasks = config.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        # A checkpoint without its own list (e.g. a LLaVA for the hf-vlm backend) answers the default tasks.
        from inference.config import DEFAULT_TASKS

        tasks = list(DEFAULT_TASKS)
    return ModelInfo(backend, path, name, tuple(tasks), bool(config.get("tiny", False)))
