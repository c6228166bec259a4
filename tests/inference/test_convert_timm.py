"""convert-timm: a timm-layout ViT state dict gives the same outputs once converted to transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.nn import functional as F
from transformers import Dinov2Model, ViTModel

from inference import InferenceError
from inference.convert_timm import convert_timm_checkpoint
from inference.encoders import load_vision_model

HIDDEN, DEPTH, HEADS, PATCH, GRID, MLP = 64, 2, 4, 8, 4, 256


def random_timm_vit(layer_scale: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """A timm ``VisionTransformer`` state dict (class token, fused qkv, optional LayerScale, a head)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    state = {
        "cls_token": rand(1, 1, HIDDEN, scale=0.5),
        "pos_embed": rand(1, 1 + GRID * GRID, HIDDEN, scale=0.5),
        "patch_embed.proj.weight": rand(HIDDEN, 3, PATCH, PATCH),
        "patch_embed.proj.bias": rand(HIDDEN),
        "norm.weight": 1 + rand(HIDDEN), "norm.bias": rand(HIDDEN),
        "head.weight": rand(10, HIDDEN), "head.bias": rand(10),
    }
    for i in range(DEPTH):
        p = f"blocks.{i}."
        state |= {
            p + "norm1.weight": 1 + rand(HIDDEN), p + "norm1.bias": rand(HIDDEN),
            p + "attn.qkv.weight": rand(3 * HIDDEN, HIDDEN, scale=0.2), p + "attn.qkv.bias": rand(3 * HIDDEN),
            p + "attn.proj.weight": rand(HIDDEN, HIDDEN, scale=0.2), p + "attn.proj.bias": rand(HIDDEN),
            p + "norm2.weight": 1 + rand(HIDDEN), p + "norm2.bias": rand(HIDDEN),
            p + "mlp.fc1.weight": rand(MLP, HIDDEN, scale=0.2), p + "mlp.fc1.bias": rand(MLP),
            p + "mlp.fc2.weight": rand(HIDDEN, MLP, scale=0.2), p + "mlp.fc2.bias": rand(HIDDEN),
        }
        if layer_scale:
            state[p + "ls1.gamma"] = 0.5 + rand(HIDDEN, scale=0.3)
            state[p + "ls2.gamma"] = 0.5 + rand(HIDDEN, scale=0.3)
    return state


def reference_forward(state: dict[str, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
    """timm's ViT forward in plain torch on the timm tensors: ``(B, 3, 32, 32)`` → ``(B, 1 + 16, HIDDEN)``."""
    x = F.conv2d(pixels, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + state["pos_embed"]
    head_dim = HIDDEN // HEADS
    for i in range(DEPTH):
        p = f"blocks.{i}."
        ls1 = state.get(p + "ls1.gamma", torch.ones(HIDDEN))
        ls2 = state.get(p + "ls2.gamma", torch.ones(HIDDEN))
        h = F.layer_norm(x, (HIDDEN,), state[p + "norm1.weight"], state[p + "norm1.bias"], eps=1e-6)
        qkv = F.linear(h, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(x.shape[0], x.shape[1], 3, HEADS, head_dim).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * head_dim**-0.5, dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(x.shape)
        x = x + ls1 * F.linear(o, state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        h = F.layer_norm(x, (HIDDEN,), state[p + "norm2.weight"], state[p + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                     state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
        x = x + ls2 * h
    return F.layer_norm(x, (HIDDEN,), state["norm.weight"], state["norm.bias"], eps=1e-6)


@pytest.mark.parametrize(("target", "model_cls", "layer_scale"), [
    ("dinov2", Dinov2Model, True),
    ("vit", ViTModel, True),
    ("vit", ViTModel, False),
])
def test_converted_model_matches_the_timm_reference(
    tmp_path: Path, target: str, model_cls: type, layer_scale: bool
) -> None:
    state = random_timm_vit(layer_scale)
    save_file(state, tmp_path / "timm.safetensors")
    out = convert_timm_checkpoint(tmp_path / "timm.safetensors", tmp_path / "hf", target=target, num_heads=HEADS)
    model = load_vision_model(out, target).eval()
    assert isinstance(model, model_cls)
    pixels = torch.randn(2, 3, GRID * PATCH, GRID * PATCH, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference_forward(state, pixels)
        actual = model(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_it_reads_torch_pickles_wrapped_in_model_key(tmp_path: Path) -> None:
    torch.save({"model": random_timm_vit()}, tmp_path / "uni.bin")
    out = convert_timm_checkpoint(tmp_path / "uni.bin", tmp_path / "hf")
    assert load_vision_model(out, "dinov2").config.hidden_size == HIDDEN


def test_it_refuses_a_checkpoint_with_unknown_tensors(tmp_path: Path) -> None:
    state = random_timm_vit() | {"blocks.0.attn.q_norm.weight": torch.ones(16)}
    save_file(state, tmp_path / "timm.safetensors")
    with pytest.raises(InferenceError, match="q_norm"):
        convert_timm_checkpoint(tmp_path / "timm.safetensors", tmp_path / "hf")


def test_it_refuses_a_checkpoint_without_a_class_token(tmp_path: Path) -> None:
    state = {k: v for k, v in random_timm_vit().items() if k != "cls_token"}
    save_file(state, tmp_path / "timm.safetensors")
    with pytest.raises(InferenceError, match="cls_token"):
        convert_timm_checkpoint(tmp_path / "timm.safetensors", tmp_path / "hf")


def test_mismatched_weights_in_a_model_dir_are_a_clear_error(tmp_path: Path) -> None:
    save_file(random_timm_vit(), tmp_path / "timm.safetensors")
    out = convert_timm_checkpoint(tmp_path / "timm.safetensors", tmp_path / "hf")
    config = (out / "config.json").read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    (out / "config.json").write_text(config)
    with pytest.raises(InferenceError, match="do not match"):
        load_vision_model(out, "dinov2")


def test_a_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InferenceError, match="does not exist"):
        convert_timm_checkpoint(tmp_path / "nope.safetensors", tmp_path / "hf")
