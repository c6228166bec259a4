"""Patch encoders by name: ``transformers`` vision models with weights from a local directory.

An encoder turns RGB tiles into one embedding per tile (the class token after the final norm). Its
identity for caching is ``encoder_id`` + ``weights_hash`` (sha256 over the parameter tensors), so two
directories holding the same weights share cached features and a retrained encoder never reuses stale ones.

Weights directory of a named encoder: the ``weights_dir`` argument, else ``$PATHDESK_ENCODERS_DIR/<name>``.
Nothing is downloaded: loading is ``local_files_only`` whatever ``HF_HUB_OFFLINE`` says.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, CLIPVisionModel, Dinov2Model, PreTrainedModel, ViTModel

from inference.errors import InferenceError
from inference.modeling_omnipath import build_vision_encoder, vision_cls_features

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CLASSES: dict[str, type[PreTrainedModel]] = {
    "clip_vision_model": CLIPVisionModel,
    "dinov2": Dinov2Model,
    "vit": ViTModel,
}


@dataclass(frozen=True)
class EncoderSpec:
    """A registry entry. ``tiny_config`` set = a seeded random tiny encoder that needs no weights."""

    name: str
    model_type: str
    role: str
    description: str
    tiny_config: dict[str, object] | None = field(default=None)

    @property
    def default_norm(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (CLIP_MEAN, CLIP_STD) if self.model_type == "clip_vision_model" else (IMAGENET_MEAN, IMAGENET_STD)


def _tiny(model_type: str) -> dict[str, object]:
    return {"model_type": model_type, "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2,
            "num_attention_heads": 4, "image_size": 32, "patch_size": 8}


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec("clip-vit-b16", "clip_vision_model", "general", "CLIP ViT-B/16 vision tower (general)"),
        EncoderSpec("uni", "dinov2", "pathology", "UNI ViT-L/16 (convert the timm checkpoint with convert-timm)"),
        EncoderSpec("phikon", "vit", "pathology", "Phikon ViT-B/16 (transformers ViTModel layout)"),
        EncoderSpec("tiny-clip", "clip_vision_model", "general", "tiny random CLIP (tests)", _tiny("clip_vision_model")),
        EncoderSpec("tiny-dinov2", "dinov2", "pathology", "tiny random Dinov2 (tests)", _tiny("dinov2")),
        EncoderSpec("tiny-vit", "vit", "pathology", "tiny random ViT (tests)", _tiny("vit")),
    )
}


def weights_hash(module: nn.Module) -> str:
    """sha256 (hex) over parameter and buffer names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


class PatchEncoder:
    """A vision model plus its preprocessing: uint8 RGB tiles → one embedding per tile.

    encoder_id: registry name or ``<model id>/general`` for OmniPath's own encoders.
    image_size: input edge in px; tiles of another size are resized (bilinear, antialiased).
    embed_dim: width ``D`` of the output embedding.
    """

    def __init__(
        self,
        model: nn.Module,
        encoder_id: str,
        image_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        weights_digest: str | None = None,
    ) -> None:
        self.model = model.to(device=device, dtype=dtype).eval()
        self.encoder_id = encoder_id
        self.image_size = int(image_size)
        self.device = torch.device(device)
        self.dtype = dtype
        self.embed_dim = int(model.config.hidden_size)
        self.weights_hash = weights_digest or weights_hash(model)
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    @property
    def cache_id(self) -> str:
        """``<encoder_id>@<first 16 hex of weights hash>``: the encoder part of a feature-store key."""
        return f"{self.encoder_id}@{self.weights_hash[:16]}"

    def preprocess(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(N, S, S, 3)`` uint8 RGB → ``(N, 3, image_size, image_size)`` normalised, on the device."""
        pixels = tiles.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if pixels.shape[-1] != self.image_size or pixels.shape[-2] != self.image_size:
            pixels = F.interpolate(pixels, size=(self.image_size, self.image_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return ((pixels - self._mean) / self._std).to(self.dtype)

    @torch.inference_mode()
    def encode(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(N, S, S, 3)`` uint8 RGB tiles → ``(N, D)`` float32 embeddings on the CPU."""
        return vision_cls_features(self.model, self.preprocess(tiles)).float().cpu()


def _norm_from_dir(weights_dir: Path, spec: EncoderSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    path = weights_dir / "preprocessor_config.json"
    if not path.is_file():
        return spec.default_norm
    data = json.loads(path.read_text())
    mean, std = spec.default_norm
    return tuple(data.get("image_mean", mean)), tuple(data.get("image_std", std))


def resolve_weights_dir(name: str, weights_dir: str | Path | None) -> Path:
    """The local directory of ``name``'s weights, or an :class:`InferenceError` saying where to put them."""
    if weights_dir is None:
        root = os.environ.get("PATHDESK_ENCODERS_DIR")
        if not root:
            raise InferenceError(
                f"encoder {name!r} needs local weights: pass a weights directory (--weights DIR) or set "
                f"PATHDESK_ENCODERS_DIR to a folder holding {name}/config.json and {name}/model.safetensors"
            )
        weights_dir = Path(root) / name
    weights_dir = Path(weights_dir)
    if not (weights_dir / "config.json").is_file():
        raise InferenceError(f"encoder {name!r}: {weights_dir} has no config.json (expected a transformers "
                             "model directory; convert timm checkpoints with `python -m inference convert-timm`)")
    return weights_dir


def load_vision_model(weights_dir: Path, model_type: str) -> PreTrainedModel:
    """Load a vision model strictly: wrong type, missing, unexpected or mis-shaped weights all raise."""
    try:
        config = AutoConfig.from_pretrained(weights_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InferenceError(f"cannot read {weights_dir / 'config.json'}: {exc}") from exc
    if config.model_type != model_type:
        raise InferenceError(f"{weights_dir} holds a {config.model_type!r} model, expected {model_type!r}")
    cls = _CLASSES[model_type]
    kwargs = {"add_pooling_layer": False} if cls is ViTModel else {}
    try:
        model, info = cls.from_pretrained(weights_dir, local_files_only=True, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InferenceError(f"cannot load weights from {weights_dir}: {exc}") from exc
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("mask_token")]
    problems = {"missing": missing, "unexpected": list(info.get("unexpected_keys", ())),
                "mismatched": [str(m[0]) if isinstance(m, tuple) else str(m) for m in info.get("mismatched_keys", ())]}
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        detail = "; ".join(f"{k}: {', '.join(v[:5])}{' …' if len(v) > 5 else ''}" for k, v in bad.items())
        raise InferenceError(f"weights in {weights_dir} do not match its config ({detail})")
    return model


def load_encoder(
    name: str,
    weights_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PatchEncoder:
    """The registered encoder ``name`` on ``device``; tiny encoders are seeded random, others need weights."""
    spec = ENCODERS.get(name)
    if spec is None:
        raise InferenceError(f"unknown encoder {name!r}; known encoders: {', '.join(sorted(ENCODERS))}")
    mean, std = spec.default_norm
    if spec.tiny_config is not None and weights_dir is None:
        config = AutoConfig.for_model(**spec.tiny_config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_vision_encoder(config)
    else:
        directory = resolve_weights_dir(name, weights_dir)
        model = load_vision_model(directory, spec.model_type)
        mean, std = _norm_from_dir(directory, spec)
    return PatchEncoder(model, name, int(model.config.image_size), mean, std, device=device, dtype=dtype)


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on other GPUs, fp32 on the CPU."""
    if torch.device(device).type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
