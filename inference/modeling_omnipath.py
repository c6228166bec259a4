"""OmniPath model: two vision encoders, MGFE, PGFC scoring, projector, decoder-only LM, mask decoder.

Shapes: ``N`` tiles, ``V`` visual tokens, ``T`` text tokens, ``d`` = ``config.hidden_size`` (visual-token
width), ``H`` = LM hidden size. Tiles are RGB crops of ``config.tile_size`` px at one magnification,
preprocessed per encoder (see :mod:`inference.processing`). Scale index 0 = coarse, 1 = fine.

This module holds the learnable parts only; slide reading, region selection under the token budget and
streaming live in :mod:`inference.pgfc` and :mod:`inference.generation`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, CLIPVisionModel, Dinov2Model, PreTrainedModel, ViTModel
from transformers.activations import ACT2FN

from inference.config import OmniPathConfig
from inference.outputs import MGFEOutput, OmniPathCausalLMOutput, TaskHeadsOutput

NUM_SCALES = 2
COARSE, FINE = 0, 1

_PATHOLOGY_CLASSES: dict[str, type[PreTrainedModel]] = {"dinov2": Dinov2Model, "vit": ViTModel}


def build_vision_encoder(vision_config: object) -> PreTrainedModel:
    """An untrained ``transformers`` vision model for a CLIP / Dinov2 / ViT config."""
    model_type = getattr(vision_config, "model_type", None)
    if model_type == "clip_vision_model":
        return CLIPVisionModel(vision_config)
    if model_type == "vit":
        return ViTModel(vision_config, add_pooling_layer=False)
    if model_type == "dinov2":
        return Dinov2Model(vision_config)
    raise ValueError(f"no vision encoder for model_type {model_type!r}")


def vision_cls_features(encoder: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Class-token embedding after the final layer norm: ``(N, 3, S, S)`` → ``(N, D_enc)``.

    CLIP's ``pooler_output`` is exactly that; ViT/Dinov2 ``last_hidden_state`` is already normed.
    """
    outputs = encoder(pixel_values=pixel_values)
    if isinstance(encoder, CLIPVisionModel):
        return outputs.pooler_output
    return outputs.last_hidden_state[:, 0]


class TileFusion(nn.Module):
    """General + pathology class tokens of a tile → one ``d``-wide token, plus a learned scale embedding."""

    def __init__(self, config: OmniPathConfig) -> None:
        super().__init__()
        in_dim = config.general_vision_config.hidden_size + config.pathology_vision_config.hidden_size
        self.proj = nn.Linear(in_dim, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size)
        self.scale_embedding = nn.Embedding(NUM_SCALES, config.hidden_size)

    def forward(self, general: torch.Tensor, pathology: torch.Tensor, scale: int) -> torch.Tensor:
        """``(N, Dg)``, ``(N, Dp)`` → ``(N, d)``."""
        fused = self.norm(self.proj(torch.cat([general, pathology], dim=-1)))
        return fused + self.scale_embedding.weight[scale]


class MixedTaskFeatureEnhancement(nn.Module):
    """MGFE: a task embedding FiLM-gates the tile tokens of each scale and steers attention pooling.

    FiLM: ``x * (1 + gamma_s(task)) + beta_s(task)`` with a (gamma, beta) pair per scale ``s``, so a
    grading task can amplify nuclear detail at the fine scale while cancer detection favours coarse
    architecture. Pooling: a task query attends over the tokens and gives one slide token for the heads.
    """

    def __init__(self, config: OmniPathConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.task_embedding = nn.Embedding(len(config.tasks), d)
        self.film = nn.Linear(d, NUM_SCALES * 2 * d)
        self.pool_query = nn.Linear(d, d)
        self.pool_key = nn.Linear(d, d)
        self.pool_value = nn.Linear(d, d)

    def film_tokens(self, tokens: torch.Tensor, scale: int, task_id: int) -> torch.Tensor:
        """``(N, d)`` tokens at ``scale`` → ``(N, d)`` task-conditioned tokens."""
        d = tokens.shape[-1]
        params = self.film(self.task_embedding.weight[task_id]).view(NUM_SCALES, 2, d)
        gamma, beta = params[scale, 0], params[scale, 1]
        return tokens * (1 + gamma) + beta

    def pool(self, tokens: torch.Tensor, task_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, d)`` → pooled ``(d,)`` and attention weights ``(N,)``."""
        query = self.pool_query(self.task_embedding.weight[task_id])
        logits = self.pool_key(tokens) @ query / math.sqrt(tokens.shape[-1])
        weights = torch.softmax(logits, dim=0)
        return weights @ self.pool_value(tokens), weights


class TaskHeads(nn.Module):
    """Mixed-supervision heads on the pooled slide token (cancer, grade, vascular / neural invasion)."""

    def __init__(self, config: OmniPathConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.cancer = nn.Linear(d, 1)
        self.grade = nn.Linear(d, config.num_grades)
        self.vascular_invasion = nn.Linear(d, 1)
        self.neural_invasion = nn.Linear(d, 1)

    def forward(self, pooled: torch.Tensor) -> TaskHeadsOutput:
        return TaskHeadsOutput(
            cancer=self.cancer(pooled),
            grade=self.grade(pooled),
            vascular_invasion=self.vascular_invasion(pooled),
            neural_invasion=self.neural_invasion(pooled),
        )


class PromptRegionScorer(nn.Module):
    """PGFC scoring: how relevant each coarse region is to this prompt and task.

    The prompt is the mean of its LM input embeddings (so scoring needs no LM forward pass), mixed with
    the task embedding; the score of a region is the cosine between that query and the region's key.
    """

    def __init__(self, config: OmniPathConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.prompt_proj = nn.Linear(config.text_config.hidden_size, d)
        self.task_proj = nn.Linear(d, d)
        self.key = nn.Linear(d, d)

    def query(self, prompt_embedding: torch.Tensor, task_embedding: torch.Tensor) -> torch.Tensor:
        """``(H,)`` mean prompt embedding, ``(d,)`` task embedding → ``(d,)`` query."""
        return self.prompt_proj(prompt_embedding) + self.task_proj(task_embedding)

    def forward(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` tokens, ``(d,)`` query → ``(N,)`` scores in [-1, 1]."""
        return F.normalize(self.key(tokens), dim=-1) @ F.normalize(query, dim=0)


class OmniPathProjector(nn.Module):
    """Visual tokens ``(..., d)`` → LM input embeddings ``(..., H)``."""

    def __init__(self, config: OmniPathConfig) -> None:
        super().__init__()
        hidden = config.text_config.hidden_size
        self.linear_1 = nn.Linear(config.hidden_size, hidden)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, visual_tokens: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(visual_tokens)))


class MaskDecoder(nn.Module):
    """A light decoder: segmentation query × tile tokens → a ``r × r`` mask-logit patch per tile."""

    def __init__(self, config: OmniPathConfig) -> None:
        super().__init__()
        d, r = config.hidden_size, config.mask_resolution
        self.resolution = r
        self.mask_dim = max(8, d // 4)
        self.query_proj = nn.Linear(d, self.mask_dim)
        self.tile_proj = nn.Linear(d, r * r * self.mask_dim)

    def forward(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` tile tokens, ``(d,)`` segmentation query → ``(N, r, r)`` mask logits (row-major)."""
        r, m = self.resolution, self.mask_dim
        per_pixel = self.tile_proj(tokens).view(-1, r * r, m)
        return (per_pixel @ self.query_proj(query)).view(-1, r, r) / math.sqrt(m)


class OmniPathPreTrainedModel(PreTrainedModel):
    config_class = OmniPathConfig
    config: OmniPathConfig
    base_model_prefix = "omnipath"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    _supports_sdpa = True


class OmniPathForConditionalGeneration(OmniPathPreTrainedModel):
    """The whole OmniPath model. Its methods follow the data flow of one analysis:

    ``tile_features`` (encoders + fusion) → ``enhance`` / ``pool`` / ``task_heads`` (MGFE) →
    ``score_regions`` (PGFC) → ``forward`` / ``language_model.generate`` on the spliced prompt, and
    ``mask_logits`` for segmentation.
    """

    def __init__(self, config: OmniPathConfig) -> None:
        super().__init__(config)
        self.general_encoder = build_vision_encoder(config.general_vision_config)
        self.pathology_encoder = build_vision_encoder(config.pathology_vision_config)
        self.fusion = TileFusion(config)
        self.mgfe = MixedTaskFeatureEnhancement(config)
        self.task_heads = TaskHeads(config)
        self.region_scorer = PromptRegionScorer(config)
        self.projector = OmniPathProjector(config)
        self.mask_decoder = MaskDecoder(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    # -- encoders -------------------------------------------------------------------------------------
    def encode_general(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S_g, S_g)`` normalised pixels → ``(N, Dg)`` general (CLIP) class tokens."""
        return vision_cls_features(self.general_encoder, pixel_values)

    def encode_pathology(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S_p, S_p)`` normalised pixels → ``(N, Dp)`` pathology (UNI-style) class tokens."""
        return vision_cls_features(self.pathology_encoder, pixel_values)

    def tile_features(self, general: torch.Tensor, pathology: torch.Tensor, scale: int) -> torch.Tensor:
        """Encoder features ``(N, Dg)`` + ``(N, Dp)`` at ``scale`` → fused tile tokens ``(N, d)``."""
        return self.fusion(general.to(self.dtype), pathology.to(self.dtype), scale)

    # -- MGFE -----------------------------------------------------------------------------------------
    def enhance(self, tokens: torch.Tensor, scale: int, task_id: int) -> torch.Tensor:
        """FiLM the ``(N, d)`` tile tokens of one scale for ``task_id`` → ``(N, d)``."""
        return self.mgfe.film_tokens(tokens, scale, task_id)

    def pool(self, tokens: torch.Tensor, task_id: int) -> MGFEOutput:
        """Task-conditioned attention pooling of ``(N, d)`` enhanced tokens."""
        pooled, attention = self.mgfe.pool(tokens, task_id)
        return MGFEOutput(tokens=tokens, pooled=pooled, attention=attention)

    def heads(self, pooled: torch.Tensor) -> TaskHeadsOutput:
        """Task-head logits for a ``(d,)`` pooled slide token."""
        return self.task_heads(pooled)

    # -- PGFC -----------------------------------------------------------------------------------------
    def prompt_query(self, prompt_ids: torch.Tensor, task_id: int) -> torch.Tensor:
        """``(T,)`` prompt token ids (no visual placeholders) → ``(d,)`` PGFC / segmentation query."""
        embeddings = self.language_model.get_input_embeddings()(prompt_ids.to(self.device))
        prompt_embedding = embeddings.mean(dim=0) if embeddings.shape[0] else embeddings.new_zeros(embeddings.shape[-1])
        return self.region_scorer.query(prompt_embedding, self.mgfe.task_embedding.weight[task_id])

    def score_regions(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Relevance of each of ``(N, d)`` enhanced tokens to the ``(d,)`` query → ``(N,)`` in [-1, 1]."""
        return self.region_scorer(tokens, query)

    def mask_logits(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` tile tokens → ``(N, r, r)`` mask logits for the segmentation ``query``."""
        return self.mask_decoder(tokens, query)

    # -- language model -------------------------------------------------------------------------------
    def embed_inputs(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor) -> torch.Tensor:
        """Text embeddings with the ``V`` image placeholders replaced by projected visual tokens.

        input_ids: ``(B, T)`` holding exactly ``V`` ``config.image_token_id`` per row.
        visual_tokens: ``(B, V, d)``. Returns ``(B, T, H)``.
        """
        embeds = self.language_model.get_input_embeddings()(input_ids)
        is_image = input_ids == self.config.image_token_id
        per_row = is_image.sum(dim=1)
        if visual_tokens.shape[0] != input_ids.shape[0] or bool((per_row != visual_tokens.shape[1]).any()):
            raise ValueError(
                f"prompt holds {per_row.tolist()} image placeholders per row but {tuple(visual_tokens.shape)} "
                "visual tokens were given; build prompts with OmniPathProcessor"
            )
        projected = self.projector(visual_tokens.to(embeds.dtype))
        return embeds.masked_scatter(is_image.unsqueeze(-1), projected.reshape(-1, projected.shape[-1]))

    def forward(
        self,
        input_ids: torch.Tensor,
        visual_tokens: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> OmniPathCausalLMOutput:
        """One LM pass: ``(B, T)`` ids with placeholders + ``(B, V, d)`` visual tokens → logits ``(B, T, vocab)``."""
        outputs = self.language_model(
            inputs_embeds=self.embed_inputs(input_ids, visual_tokens), attention_mask=attention_mask, labels=labels
        )
        return OmniPathCausalLMOutput(loss=outputs.loss, logits=outputs.logits)
