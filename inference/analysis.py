"""The backend interface the web app calls: a request in, a cancellable stream of text pieces out, then a result.

    backend = load_backend("omnipath", model_dir)
    stream = backend.analyze(AnalysisRequest(slide_path, prompt="Is there cancer?", task="cancer_detection"))
    for piece in stream:          # text as the LM writes it; stream.cancel() stops between tokens
        ...
    result = stream.result        # AnalysisResult, JSON-ready through result.to_dict()
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from inference.errors import InferenceError


@dataclass(frozen=True)
class AnalysisRequest:
    """One question about one slide.

    roi: optional level-0 ``(x, y, w, h)``: only tiles meeting it are looked at.
    slide_sha256: the file's sha256 when the caller knows it (saves hashing the file).
    """

    slide_path: str | Path
    prompt: str
    task: str = "question"
    roi: tuple[float, float, float, float] | None = None
    max_new_tokens: int | None = None
    slide_sha256: str | None = None

    def validate(self) -> None:
        if not self.prompt or not self.prompt.strip():
            raise InferenceError("the prompt is empty; ask a question about the slide")
        if self.roi is not None and (len(self.roi) != 4 or self.roi[2] <= 0 or self.roi[3] <= 0):
            raise InferenceError(f"region of interest must be x,y,w,h with w,h > 0; got {self.roi}")


@dataclass
class Region:
    """A region the model looked at closely: level-0 box ``(x, y, w, h)``, PGFC score, magnification read,
    and how many tiles at that magnification it holds (encoded, or taken from the fine-tile cache)."""

    l0_box: tuple[float, float, float, float]
    score: float
    magnification: float
    fine_tiles: int = 0


@dataclass
class Timings:
    """Seconds: features (tiles → visual tokens), of which fine_features (the PGFC re-read: fine-tile cache
    look-up, reading and encoding the tiles it lacked), prefill (LM over the prompt), first_token (request →
    first generated token), total; tokens_per_s over the tokens after the first."""

    features: float = 0.0
    fine_features: float = 0.0
    prefill: float = 0.0
    first_token: float = 0.0
    total: float = 0.0
    tokens_per_s: float = 0.0


@dataclass
class AnalysisResult:
    """The end of an analysis.

    visual_tokens ≤ visual_token_budget. tiles_encoded / tissue_tiles: per magnification (key ``"20x"``),
    tiles encoded for this answer vs tissue tiles available. tiles_cached: per magnification, tiles this
    answer used whose features came from a cache instead (the feature store for the coarse pass, the
    fine-tile cache for PGFC); at the fine magnification, encoded + cached = the tiles PGFC read.
    polygons: segmentation, GeoJSON Polygon coordinate lists in level-0 px. notes: what a person should
    know (mpp fallback, no tissue found…).
    """

    text: str
    model: str
    backend: str
    task: str
    regions: list[Region] = field(default_factory=list)
    visual_tokens: int = 0
    visual_token_budget: int = 0
    tiles_encoded: dict[str, int] = field(default_factory=dict)
    tissue_tiles: dict[str, int] = field(default_factory=dict)
    tiles_cached: dict[str, int] = field(default_factory=dict)
    polygons: list[list[list[list[float]]]] = field(default_factory=list)
    task_scores: dict[str, Any] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)
    generated_tokens: int = 0
    cancelled: bool = False
    tiny_model: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend(Protocol):
    """What the web app needs of a model backend."""

    name: str
    model_id: str

    def analyze(self, request: AnalysisRequest, progress: Callable[[str, int, int], None] | None = None
                ) -> AnalysisStream: ...


class AnalysisStream:
    """Iterate for text pieces; ``cancel()`` stops generation between tokens; ``result`` once exhausted."""

    def __init__(self, run: Callable[[threading.Event], Iterator[str]]) -> None:
        self._cancel = threading.Event()
        self._pieces = run(self._cancel)
        self._result: AnalysisResult | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as stop:
            self._result = stop.value
            raise

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def result(self) -> AnalysisResult:
        if self._result is None:
            raise RuntimeError("the stream has not finished; iterate it to the end first")
        return self._result

    def run(self) -> AnalysisResult:
        """Consume the whole stream and return the result."""
        for _ in self:
            pass
        return self.result


class _QueueStreamer(BaseStreamer):
    """Receives token ids from ``generate`` (on its thread); the first ``put`` is the prompt and is skipped."""

    def __init__(self) -> None:
        self.tokens: queue.Queue[int | None] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.tokens.put(int(token))

    def end(self) -> None:
        self.tokens.put(None)


class _CancelCriteria(StoppingCriteria):
    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool, device=input_ids.device)


TINY_MODEL_NOTE = "tiny randomly initialised model: the text is noise, not a diagnosis"


def start_result(model_id: str, backend: str, task: str, tiny: bool) -> AnalysisResult:
    """An empty result for a run; a tiny (untrained) model's result says its text is noise."""
    result = AnalysisResult(text="", model=model_id, backend=backend, task=task, tiny_model=tiny)
    if tiny:
        result.notes.append(TINY_MODEL_NOTE)
    return result


def stream_generate(
    model: Any, tokenizer: Any, generate_kwargs: dict[str, Any], cancel: threading.Event, timings: Timings,
    started: float,
) -> Iterator[str]:
    """Run ``model.generate(**generate_kwargs)`` on a thread and yield decoded text pieces as tokens arrive.

    Pieces are differences of the decoded text so far, held back while it ends in an incomplete UTF-8
    sequence, so their concatenation equals decoding all generated tokens at once. Returns (as the
    generator's value) the number of tokens generated. Fills ``timings`` (``started`` = request start).
    """
    streamer = _QueueStreamer()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(**generate_kwargs, streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([_CancelCriteria(cancel)]))
        except Exception as exc:  # noqa: BLE001 - re-raised on the consuming thread
            failure.append(exc)
            streamer.end()

    generate_started = time.perf_counter()
    thread = threading.Thread(target=work, daemon=True, name="generate")
    thread.start()
    ids: list[int] = []
    emitted = ""
    first_at = last_at = None
    drained = False
    try:
        while (token := streamer.tokens.get()) is not None:
            last_at = time.perf_counter()
            if first_at is None:
                first_at = last_at
                timings.prefill = first_at - generate_started
                timings.first_token = first_at - started
            ids.append(token)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            if not text.endswith("\ufffd") and len(text) > len(emitted) and text.startswith(emitted):
                piece, emitted = text[len(emitted):], text
                yield piece
        drained = True
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if text != emitted and text.startswith(emitted):
            yield text[len(emitted):]
    finally:
        if not drained:  # the consumer stopped early (closed generator): stop generate too
            cancel.set()
        thread.join()
    if failure:
        raise InferenceError(f"generation failed: {failure[0]}") from failure[0]
    if first_at is not None and last_at is not None and len(ids) > 1 and last_at > first_at:
        timings.tokens_per_s = (len(ids) - 1) / (last_at - first_at)
    return len(ids)


def collect_stream(
    generator: Generator[str, None, int], result: AnalysisResult, timings: Timings, started: float,
    cancel: threading.Event,
) -> Generator[str, None, AnalysisResult]:
    """Pass on the pieces of a `stream_generate` run, then complete ``result`` (text, token count,
    timings, cancelled) and return it. Closing this generator early closes (and so cancels) the run."""
    pieces: list[str] = []
    try:
        while True:
            try:
                piece = next(generator)
            except StopIteration as stop:
                result.generated_tokens = int(stop.value or 0)
                break
            pieces.append(piece)
            yield piece
    finally:
        generator.close()
    timings.total = time.perf_counter() - started
    result.text, result.timings, result.cancelled = "".join(pieces), timings, cancel.is_set()
    return result
