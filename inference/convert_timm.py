"""Convert a timm ViT checkpoint (UNI, Virchow-style ViT-L/16 …) to a ``Dinov2Model`` or ``ViTModel`` directory.

timm cannot be imported here (it needs torchvision), so the mapping is done on the state dict alone:

====================================  ==========================================================
timm                                  transformers 5 (Dinov2 ``encoder.layer.i``; ViT ``layers.i``)
====================================  ==========================================================
cls_token (1, 1, D)                   embeddings.cls_token
pos_embed (1, 1 + P², D)              embeddings.position_embeddings
patch_embed.proj.{weight,bias}        embeddings.patch_embeddings.projection.*
blocks.i.norm1 / norm2                norm1 / norm2 (ViT: layernorm_before / layernorm_after)
blocks.i.attn.qkv (3D, D) fused       attention.{q,k,v}_proj, split in that order
blocks.i.attn.proj                    attention.o_proj
blocks.i.ls1.gamma / ls2.gamma        layer_scale1.lambda1 / layer_scale2.lambda1
                                      (ViT has no LayerScale: gamma is folded into o_proj / fc2)
blocks.i.mlp.fc1 / fc2                mlp.fc1 / mlp.fc2
norm                                  layernorm
head.*, fc_norm (identity)            dropped (classification head)
====================================  ==========================================================

The number of heads is not in a state dict; it defaults to ``D // 64`` (true for ViT-S/B/L/H).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import Dinov2Config, Dinov2Model, ViTConfig, ViTModel

from inference.encoders import IMAGENET_MEAN, IMAGENET_STD
from inference.errors import InferenceError

_IGNORED = re.compile(r"^(head\.|head_drop\.|fc_norm\.)")


def read_timm_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` / ``.bin`` / ``.pth`` checkpoint, unwrapped from ``model``/``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise InferenceError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise InferenceError(f"cannot read checkpoint {path}: {exc}") from exc
    for wrapper in ("model", "state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InferenceError(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _require(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise InferenceError(f"timm checkpoint lacks {key!r}; is it a ViT with a class token?")
    return state[key]


def convert_state_dict(
    state: dict[str, torch.Tensor], target: str | None = None, num_heads: int | None = None
) -> tuple[dict[str, torch.Tensor], Dinov2Config | ViTConfig]:
    """Map a timm ViT state dict to ``target`` ("dinov2" or "vit"; default dinov2 when LayerScale is present).

    Returns the converted state dict and the matching config. Every timm tensor is either mapped or in
    the known-ignorable set (classification head); anything else is an :class:`InferenceError`.
    """
    cls_token = _require(state, "cls_token")
    pos_embed = _require(state, "pos_embed")
    proj = _require(state, "patch_embed.proj.weight")
    if "reg_token" in state:
        raise InferenceError("timm checkpoints with register tokens are not supported")
    hidden = cls_token.shape[-1]
    patch = proj.shape[-1]
    depth = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise InferenceError("timm checkpoint has no transformer blocks (blocks.N.*)")
    grid = math.isqrt(pos_embed.shape[1] - 1)
    if grid * grid != pos_embed.shape[1] - 1:
        raise InferenceError(f"pos_embed {tuple(pos_embed.shape)} does not hold a class token + square grid")
    layer_scale = "blocks.0.ls1.gamma" in state
    target = target or ("dinov2" if layer_scale else "vit")
    heads = num_heads or max(1, hidden // 64)
    if hidden % heads:
        raise InferenceError(f"hidden size {hidden} is not divisible by {heads} heads")
    mlp = _require(state, "blocks.0.mlp.fc1.weight").shape[0]
    eps = 1e-6
    common = {"hidden_size": hidden, "num_hidden_layers": depth, "num_attention_heads": heads,
              "image_size": grid * patch, "patch_size": patch, "qkv_bias": "blocks.0.attn.qkv.bias" in state,
              "layer_norm_eps": eps, "hidden_act": "gelu"}
    if target == "dinov2":
        if mlp % hidden:
            raise InferenceError(f"MLP width {mlp} is not a multiple of {hidden}; Dinov2 needs an integer mlp_ratio, "
                                 "use target 'vit'")
        config: Dinov2Config | ViTConfig = Dinov2Config(mlp_ratio=mlp // hidden, layerscale_value=1.0, **common)
    elif target == "vit":
        config = ViTConfig(intermediate_size=mlp, **common)
    else:
        raise InferenceError(f"unknown target {target!r}; use 'dinov2' or 'vit'")

    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return _require(state, key)

    out: dict[str, torch.Tensor] = {
        "embeddings.cls_token": take("cls_token"),
        "embeddings.position_embeddings": take("pos_embed"),
        "embeddings.patch_embeddings.projection.weight": take("patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": take("patch_embed.proj.bias"),
        "layernorm.weight": take("norm.weight"),
        "layernorm.bias": take("norm.bias"),
    }
    if target == "dinov2":
        out["embeddings.mask_token"] = torch.zeros(1, hidden, dtype=cls_token.dtype)
    for i in range(depth):
        src = f"blocks.{i}."
        dst = f"encoder.layer.{i}." if target == "dinov2" else f"layers.{i}."
        qkv_w = take(src + "attn.qkv.weight")
        qkv_b = take(src + "attn.qkv.bias") if config.qkv_bias else None
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"{dst}attention.{name}.weight"] = qkv_w[j * hidden:(j + 1) * hidden].clone()
            if qkv_b is not None:
                out[f"{dst}attention.{name}.bias"] = qkv_b[j * hidden:(j + 1) * hidden].clone()
        attn_w, attn_b = take(src + "attn.proj.weight"), take(src + "attn.proj.bias")
        fc2_w, fc2_b = take(src + "mlp.fc2.weight"), take(src + "mlp.fc2.bias")
        ls1 = take(src + "ls1.gamma") if layer_scale else None
        ls2 = take(src + "ls2.gamma") if layer_scale else None
        norms = ("norm1", "norm2") if target == "dinov2" else ("layernorm_before", "layernorm_after")
        for timm_norm, hf_norm in zip(("norm1", "norm2"), norms, strict=True):
            out[f"{dst}{hf_norm}.weight"] = take(f"{src}{timm_norm}.weight")
            out[f"{dst}{hf_norm}.bias"] = take(f"{src}{timm_norm}.bias")
        out[f"{dst}mlp.fc1.weight"] = take(src + "mlp.fc1.weight")
        out[f"{dst}mlp.fc1.bias"] = take(src + "mlp.fc1.bias")
        if target == "dinov2":
            one = torch.ones(hidden, dtype=cls_token.dtype)
            out[f"{dst}layer_scale1.lambda1"] = ls1 if ls1 is not None else one
            out[f"{dst}layer_scale2.lambda1"] = ls2 if ls2 is not None else one.clone()
        elif ls1 is not None and ls2 is not None:
            # gamma * (W x + b) == (gamma[:, None] * W) x + gamma * b: LayerScale folds exactly into the linear.
            attn_w, attn_b = attn_w * ls1[:, None], attn_b * ls1
            fc2_w, fc2_b = fc2_w * ls2[:, None], fc2_b * ls2
        out[f"{dst}attention.o_proj.weight"], out[f"{dst}attention.o_proj.bias"] = attn_w, attn_b
        out[f"{dst}mlp.fc2.weight"], out[f"{dst}mlp.fc2.bias"] = fc2_w, fc2_b
    leftover = sorted(k for k in state if k not in used and not _IGNORED.match(k))
    if leftover:
        raise InferenceError(f"timm checkpoint has tensors this converter does not know: {', '.join(leftover[:8])}")
    return {k: v.contiguous() for k, v in out.items()}, config


def convert_timm_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, target: str | None = None, num_heads: int | None = None
) -> Path:
    """Convert ``checkpoint`` and save a loadable model directory (config, safetensors, preprocessor) to ``out_dir``.

    The converted tensors are loaded strictly into the target class before saving, so a shape mismatch
    fails here, not at analysis time.
    """
    state, config = convert_state_dict(read_timm_state_dict(checkpoint), target, num_heads)
    model = Dinov2Model(config) if isinstance(config, Dinov2Config) else ViTModel(config, add_pooling_layer=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InferenceError(f"converted weights do not fit {type(model).__name__}: {exc}") from exc
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "BitImageProcessor", "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD), "crop_size": {"height": config.image_size, "width": config.image_size},
    }, indent=2))
    return out_dir
