"""The one exception of ``inference/``."""

from __future__ import annotations


class InferenceError(Exception):
    """A failure a person can act on: bad model directory, missing weights, empty prompt, unreadable slide.

    The message says what was wrong and what to do about it; callers (CLI, web app) show it as is.
    """
