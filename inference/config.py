"""OmniPath configuration: one validated ``PreTrainedConfig`` holding every size of the model.

The same class describes the ~20M-parameter tiny checkpoint used in tests and a full-size model
(CLIP ViT-B/16 + UNI ViT-L/16 + a 7B Llama/Qwen2); nothing in the code hard-codes a size.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

DEFAULT_TASKS: tuple[str, ...] = (
    "describe",
    "cancer_detection",
    "grading",
    "vascular_invasion",
    "neural_invasion",
    "segmentation",
    "question",
)
"""Tasks the task embedding knows, in embedding-row order. ``question`` is the free-question fallback."""

TASK_LABELS: tuple[str, ...] = ("cancer", "grade", "vascular_invasion", "neural_invasion")
"""Task-head labels, in column order of the ``task_labels`` tensor (see :mod:`inference.losses`)."""

LOSS_TERMS: tuple[str, ...] = ("lm", *TASK_LABELS, "mask_bce", "mask_dice")
"""Terms of the mixed-task training loss, each weighted by ``config.loss_weights[term]``."""

GENERAL_ENCODER_TYPES = ("clip_vision_model",)
PATHOLOGY_ENCODER_TYPES = ("dinov2", "vit")
TEXT_MODEL_TYPES = ("llama", "qwen2")


class OmniPathConfig(PreTrainedConfig):
    """Configuration of :class:`inference.modeling_omnipath.OmniPathForConditionalGeneration`.

    Sub-configs:
        general_vision_config: a ``clip_vision_model`` config (general CLIP-style ViT encoder).
        pathology_vision_config: a ``dinov2`` or ``vit`` config (UNI / Phikon-style pathology encoder).
        text_config: a ``llama`` or ``qwen2`` decoder-only LM config.

    Visual side (all sizes in pixels are at the magnification named next to them):
        hidden_size: width ``d`` of a visual token inside MGFE/PGFC, before the projector.
        tasks: task names, one task-embedding row each.
        coarse_magnification / fine_magnification: objective magnifications (×) of the coarse
            whole-slide pass and of the PGFC re-read (20× ≈ 0.5 µm/px).
        tile_size: tile edge in pixels at either magnification, read from the slide, then resized to
            each encoder's ``image_size``.
        visual_token_budget: the most visual tokens the LM ever sees, whatever the slide size.
        pgfc_top_k: coarse regions re-read at the fine magnification.
        fine_tokens_per_region: fine tokens kept per selected region (best-scoring fine tiles).
        num_grades: classes of the grading head.
        mask_resolution: mask pixels per coarse-tile edge produced by the mask decoder.
        image_token: placeholder token in the tokenizer, one per visual token in the prompt.

    Training:
        loss_weights: weight of each term of the mixed-task loss (``LOSS_TERMS``: ``lm``, ``cancer``,
            ``grade``, ``vascular_invasion``, ``neural_invasion``, ``mask_bce``, ``mask_dice``); terms
            left out weigh 1.0, a weight of 0 switches a term off.
    """

    model_type = "omnipath"
    sub_configs_defaults = {
        "general_vision_config": SubConfigSpec(config_class=AutoConfig, model_type="clip_vision_model"),
        "pathology_vision_config": SubConfigSpec(config_class=AutoConfig, model_type="dinov2"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    general_vision_config: dict | PreTrainedConfig | None = None
    pathology_vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    hidden_size: int = 1024
    tasks: list[str] | None = None
    coarse_magnification: float = 5.0
    fine_magnification: float = 20.0
    tile_size: int = 224
    visual_token_budget: int = 576
    pgfc_top_k: int = 16
    fine_tokens_per_region: int = 16
    num_grades: int = 4
    mask_resolution: int = 8
    image_token: str = "<image>"
    image_token_id: int | None = None
    projector_hidden_act: str = "gelu"
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    loss_weights: dict[str, float] | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.tasks is None:
            self.tasks = list(DEFAULT_TASKS)
        self.tasks = list(self.tasks)
        given = dict(self.loss_weights or {})
        unknown = sorted(set(given) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"invalid OmniPathConfig: unknown loss_weights terms {unknown}; "
                             f"known terms: {', '.join(LOSS_TERMS)}")
        self.loss_weights = {term: float(given.get(term, 1.0)) for term in LOSS_TERMS}
        self._validate()

    def _validate(self) -> None:
        problems: list[str] = []
        if self.general_vision_config.model_type not in GENERAL_ENCODER_TYPES:
            problems.append(f"general_vision_config.model_type must be one of {GENERAL_ENCODER_TYPES}")
        if self.pathology_vision_config.model_type not in PATHOLOGY_ENCODER_TYPES:
            problems.append(f"pathology_vision_config.model_type must be one of {PATHOLOGY_ENCODER_TYPES}")
        if self.text_config.model_type not in TEXT_MODEL_TYPES:
            problems.append(f"text_config.model_type must be one of {TEXT_MODEL_TYPES}")
        missing = [task for task in ("question", "segmentation") if task not in self.tasks]
        if missing:
            problems.append(f"tasks must include {missing}")
        if len(set(self.tasks)) != len(self.tasks):
            problems.append("tasks must be unique")
        if not 0 < self.coarse_magnification <= self.fine_magnification:
            problems.append("need 0 < coarse_magnification <= fine_magnification")
        fine_tokens = self.pgfc_top_k * self.fine_tokens_per_region
        # One slot for the task-pooled slide token, at least one for the coarse overview.
        if self.visual_token_budget < fine_tokens + 2:
            problems.append(
                f"visual_token_budget={self.visual_token_budget} leaves no room for the coarse overview: "
                f"pgfc_top_k*fine_tokens_per_region={fine_tokens} plus 2 must fit"
            )
        for name in ("hidden_size", "tile_size", "pgfc_top_k", "fine_tokens_per_region", "num_grades",
                     "mask_resolution"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        bad_weights = [term for term, weight in self.loss_weights.items() if not 0 <= weight < float("inf")]
        if bad_weights:
            problems.append(f"loss_weights must be finite and >= 0 (bad: {bad_weights})")
        if problems:
            raise ValueError("invalid OmniPathConfig: " + "; ".join(problems))

    @property
    def coarse_token_slots(self) -> int:
        """Visual tokens left for the coarse overview once the fine tokens and the slide token fit."""
        return self.visual_token_budget - self.pgfc_top_k * self.fine_tokens_per_region - 1

    def task_id(self, task: str) -> int:
        """Row of ``task`` in the task embedding; raises ``ValueError`` naming the known tasks."""
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(self.tasks)}")
        return self.tasks.index(task)


# Known to the Auto classes, so reading a checkpoint's config.json (AutoTokenizer does) yields this class
# instead of a generic config with a warning about the unknown model type.
AutoConfig.register(OmniPathConfig.model_type, OmniPathConfig, exist_ok=True)
