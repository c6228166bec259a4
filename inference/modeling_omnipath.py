"""OmniPath model: two vision encoders, MGFE, PGFC scoring, projector, decoder-only LM, mask decoder.

Shapes: ``N`` tiles, ``V`` visual tokens, ``T`` text tokens, ``d`` = ``config.hidden_size`` (visual-token
width), ``H`` = LM hidden size, ``B`` slides in a batch. Tiles are RGB crops of ``config.tile_size`` px at one
magnification, preprocessed per encoder (:class:`inference.encoders.PatchEncoder`). Scale index 0 = coarse,
1 = fine. The MGFE parts take one slide ``(N, d)`` with an int task id, or a batch ``(B, N, d)`` with a
``(B,)`` tensor of task ids.

This module holds the learnable parts only; slide reading, region selection under the token budget and
streaming live in :mod:`inference.omnipath_backend` and :mod:`inference.analysis`; the training losses in
:mod:`inference.losses`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModelForCausalLM, CLIPVisionModel, Dinov2Model, PreTrainedModel, ViTModel
from transformers.activations import ACT2FN

from inference.config import OmniPathConfig
from inference.losses import combine, lm_loss, mask_losses, task_head_losses
from inference.outputs import MGFEOutput, OmniPathCausalLMOutput, TaskHeadsOutput, VisualTokensOutput
from inference.pgfc import pool_to_slots
from inference.processing import SlideInputs

TaskId = int | torch.Tensor
"""One task (an int row of the task embedding) or a ``(B,)`` tensor of rows, one per slide of a batch."""

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
        """``(N, Dg)``, ``(N, Dp)`` → ``(N, d)``; leading batch dims pass through."""
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

    def film_tokens(self, tokens: torch.Tensor, scale: int, task_id: TaskId) -> torch.Tensor:
        """``(N, d)`` / ``(B, N, d)`` tokens at ``scale`` → the same shape, task-conditioned."""
        d = tokens.shape[-1]
        params = self.film(self.task_embedding.weight[task_id])
        params = params.view(*params.shape[:-1], NUM_SCALES, 2, d)
        gamma, beta = params[..., scale, 0, :], params[..., scale, 1, :]
        if gamma.dim() == 2:  # one (gamma, beta) per slide of the batch, shared by its N tiles
            gamma, beta = gamma[:, None], beta[:, None]
        return tokens * (1 + gamma) + beta

    def pool(self, tokens: torch.Tensor, task_id: TaskId, mask: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, d)`` → pooled ``(d,)`` and attention weights ``(N,)``; batched ``(B, N, d)`` → ``(B, d)``,
        ``(B, N)``, where ``mask`` ``(B, N)`` (False = padding) keeps padding out of the softmax."""
        query = self.pool_query(self.task_embedding.weight[task_id])
        logits = (self.pool_key(tokens) @ query.unsqueeze(-1)).squeeze(-1) / math.sqrt(tokens.shape[-1])
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        return (weights.unsqueeze(-2) @ self.pool_value(tokens)).squeeze(-2), weights


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
        """``(N, d)`` tile tokens, ``(d,)`` segmentation query → ``(N, r, r)`` mask logits (row-major);
        batched ``(B, N, d)``, ``(B, d)`` → ``(B, N, r, r)``."""
        r, m = self.resolution, self.mask_dim
        per_pixel = self.tile_proj(tokens).unflatten(-1, (r * r, m))
        query = self.query_proj(query)[..., None, :, None]  # broadcast over the tiles: (…, 1, m, 1)
        return (per_pixel @ query).squeeze(-1).unflatten(-1, (r, r)) / math.sqrt(m)


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
    def enhance(self, tokens: torch.Tensor, scale: int, task_id: TaskId) -> torch.Tensor:
        """FiLM the ``(N, d)`` (or ``(B, N, d)``) tile tokens of one scale for ``task_id`` → same shape."""
        return self.mgfe.film_tokens(tokens, scale, task_id)

    def pool(self, tokens: torch.Tensor, task_id: TaskId, mask: torch.Tensor | None = None) -> MGFEOutput:
        """Task-conditioned attention pooling of ``(N, d)`` (or masked ``(B, N, d)``) enhanced tokens."""
        pooled, attention = self.mgfe.pool(tokens, task_id, mask)
        return MGFEOutput(tokens=tokens, pooled=pooled, attention=attention)

    def heads(self, pooled: torch.Tensor) -> TaskHeadsOutput:
        """Task-head logits for a ``(d,)`` pooled slide token (or ``(B, d)``)."""
        return self.task_heads(pooled)

    # -- PGFC -----------------------------------------------------------------------------------------
    def prompt_query(self, prompt_ids: torch.Tensor, task_id: TaskId, mask: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """``(T,)`` prompt token ids (no visual placeholders) → ``(d,)`` PGFC / segmentation query;
        batched ``(B, T)`` ids with a ``(B, T)`` padding mask → ``(B, d)``. An empty prompt counts as zeros."""
        embeddings = self.language_model.get_input_embeddings()(prompt_ids.to(self.device))
        if mask is None:
            prompt_embedding = embeddings.sum(dim=-2) / max(1, prompt_ids.shape[-1])
        else:
            weight = mask.to(embeddings.device, embeddings.dtype).unsqueeze(-1)
            prompt_embedding = (embeddings * weight).sum(dim=-2) / weight.sum(dim=-2).clamp(min=1)
        return self.region_scorer.query(prompt_embedding, self.mgfe.task_embedding.weight[task_id])

    def score_regions(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Relevance of each of ``(N, d)`` enhanced tokens to the ``(d,)`` query → ``(N,)`` in [-1, 1]."""
        return self.region_scorer(tokens, query)

    def mask_logits(self, tokens: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` tile tokens → ``(N, r, r)`` mask logits for the segmentation ``query`` (or batched)."""
        return self.mask_decoder(tokens, query)

    # -- visual tokens --------------------------------------------------------------------------------
    def assemble_visual_tokens(self, pooled: torch.Tensor, coarse_tokens: torch.Tensor, tile_cr: np.ndarray,
                               fine_tokens: torch.Tensor) -> torch.Tensor:
        """One slide's visual tokens ``(V, d)``: the ``(d,)`` task-pooled token, the ``(N, d)`` coarse tokens
        pooled into ``config.coarse_token_slots`` by their ``(N, 2)`` tile_cr, then the ``(K, d)`` fine tokens.

        Inference and training both build visual tokens here; ``V ≤ visual_token_budget`` whenever
        ``K ≤ pgfc_top_k · fine_tokens_per_region``.
        """
        overview, _ = pool_to_slots(coarse_tokens, tile_cr, self.config.coarse_token_slots)
        return torch.cat([pooled[None], overview, fine_tokens], dim=0)

    def build_visual_tokens(self, slides: SlideInputs) -> VisualTokensOutput:
        """MGFE + PGFC on features: a batch of slides → visual tokens, task-head and mask logits.

        The steps of :meth:`inference.omnipath_backend.OmniPathBackend.prepare` in batch form, differentiable
        (the fine tiles are given, already chosen). Shapes in :class:`inference.outputs.VisualTokensOutput`.
        """
        slides = slides.to(self.device)
        task_ids = slides.task_ids
        coarse = self.enhance(self.tile_features(slides.general_features, slides.pathology_features, COARSE),
                              COARSE, task_ids)
        mgfe = self.pool(coarse, task_ids, slides.tile_mask)
        query = self.prompt_query(slides.query_ids, task_ids, slides.query_mask)
        fine = self.enhance(self.tile_features(slides.fine_general_features, slides.fine_pathology_features, FINE),
                            FINE, task_ids)
        rows = []
        for row in range(coarse.shape[0]):
            tiles = slides.tile_mask[row]
            rows.append(self.assemble_visual_tokens(mgfe.pooled[row], coarse[row, tiles],
                                                    slides.tile_cr[row, tiles].cpu().numpy(),
                                                    fine[row, slides.fine_mask[row]]))
        visual = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        lengths = torch.tensor([len(r) for r in rows], device=visual.device)
        visual_mask = torch.arange(visual.shape[1], device=visual.device)[None] < lengths[:, None]
        return VisualTokensOutput(visual_tokens=visual, visual_mask=visual_mask, pooled=mgfe.pooled,
                                  attention=mgfe.attention, task_logits=self.heads(mgfe.pooled),
                                  mask_logits=self.mask_logits(coarse, query))

    # -- language model -------------------------------------------------------------------------------
    def embed_inputs(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor,
                     visual_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text embeddings with the image placeholders replaced by projected visual tokens.

        input_ids: ``(B, T)``; visual_tokens: ``(B, V, d)``; visual_mask: ``(B, V)`` bool (False = padding;
        default all True). Row ``b`` must hold exactly ``visual_mask[b].sum()`` ``config.image_token_id``
        placeholders (``inference.processing.prompt_ids`` makes them). Returns ``(B, T, H)``.
        """
        embeds = self.language_model.get_input_embeddings()(input_ids)
        is_image = input_ids == self.config.image_token_id
        per_row = is_image.sum(dim=1)
        wanted = (visual_mask.sum(dim=1).to(per_row.device) if visual_mask is not None
                  else torch.full_like(per_row, visual_tokens.shape[1]))
        if visual_tokens.shape[0] != input_ids.shape[0] or bool((per_row != wanted).any()):
            raise ValueError(
                f"prompt holds {per_row.tolist()} image placeholders per row but {wanted.tolist()} visual tokens "
                f"were given {tuple(visual_tokens.shape)}; build prompts with inference.processing.prompt_ids"
            )
        projected = self.projector(visual_tokens.to(embeds.dtype))
        if visual_mask is not None:
            projected = projected[visual_mask.to(projected.device)]
        return embeds.masked_scatter(is_image.unsqueeze(-1), projected.reshape(-1, projected.shape[-1]))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        visual_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        slides: SlideInputs | None = None,
        task_labels: torch.Tensor | None = None,
        mask_labels: torch.Tensor | None = None,
    ) -> OmniPathCausalLMOutput:
        """An LM pass and/or the mixed-task heads, with the losses of the labels given.

        Visual input is either prebuilt ``visual_tokens`` ``(B, V, d)`` (LM only) or ``slides`` (features:
        MGFE → task heads, mask decoder, visual tokens, see :meth:`build_visual_tokens`).

        input_ids: ``(B, T)`` with the image placeholders (None with ``slides``: no LM pass at all).
        labels: ``(B, T)`` next-token targets aligned with ``input_ids``, ``-100`` where unsupervised.
        task_labels: ``(B, 4)`` cancer, grade index, vascular / neural invasion; ``-100`` = no label.
        mask_labels: ``(B, N, r, r)`` lesion targets in [0, 1] per coarse tile; ``-100`` = no label.
        Labels that are all ``-100`` (or None) skip their term; see :mod:`inference.losses`.
        """
        if (visual_tokens is None) == (slides is None):
            raise ValueError("give either visual_tokens (prebuilt) or slides (features), not both or neither")
        if slides is None and (task_labels is not None or mask_labels is not None):
            raise ValueError("task_labels and mask_labels need slides: the heads run on slide features")
        if input_ids is None and (visual_tokens is not None or labels is not None):
            raise ValueError("input_ids are needed for a language-model pass")
        visual_mask = built = None
        if slides is not None:
            built = self.build_visual_tokens(slides)
            visual_tokens, visual_mask = built.visual_tokens, built.visual_mask
        logits = None
        losses: dict[str, torch.Tensor] = {}
        if input_ids is not None:
            input_ids = input_ids.to(self.device)
            if attention_mask is not None:
                attention_mask = attention_mask.to(self.device)
            logits = self.language_model(inputs_embeds=self.embed_inputs(input_ids, visual_tokens, visual_mask),
                                         attention_mask=attention_mask).logits
            if labels is not None and (text := lm_loss(logits, labels)) is not None:
                losses["lm"] = text
        if built is not None and task_labels is not None:
            losses.update(task_head_losses(built.task_logits, task_labels, self.config.num_grades))
        if built is not None and mask_labels is not None:
            losses.update(mask_losses(built.mask_logits, mask_labels, slides.tile_mask))
        return OmniPathCausalLMOutput(
            loss=combine(losses, self.config.loss_weights), losses=losses or None, logits=logits,
            task_logits=built.task_logits if built is not None else None,
            mask_logits=built.mask_logits if built is not None else None,
        )
