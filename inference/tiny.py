"""Tiny randomly initialised checkpoints: OmniPath (~20M parameters) and a LLaVA stand-in.

They exist so every code path runs on a CPU without downloading anything. Their text is noise: callers
must say plainly that a tiny checkpoint's answer is not a diagnosis (``tiny`` is recorded in config).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig

from inference.config import OmniPathConfig
from inference.modeling_omnipath import OmniPathForConditionalGeneration
from inference.tokenizer import IMAGE_TOKEN, train_tiny_tokenizer

TINY_VOCAB = 1024


def tiny_vision_config(model_type: str, image_size: int = 32) -> dict[str, object]:
    """A 4-layer, 256-wide ViT config of ``model_type`` (clip_vision_model, dinov2 or vit), patch 8."""
    return {
        "model_type": model_type,
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "image_size": image_size,
        "patch_size": 8,
    }


def tiny_omnipath_config(image_token_id: int, vocab_size: int = TINY_VOCAB, **overrides: object) -> OmniPathConfig:
    """The tiny OmniPath config: 64-px tiles at 5× and 20×, a 64-token visual budget, a 6-layer Llama."""
    text_config = {
        "model_type": "llama",
        "hidden_size": 384,
        "intermediate_size": 1280,
        "num_hidden_layers": 6,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,
        "vocab_size": vocab_size,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    kwargs: dict[str, object] = {
        "general_vision_config": tiny_vision_config("clip_vision_model"),
        "pathology_vision_config": tiny_vision_config("dinov2"),
        "text_config": text_config,
        "hidden_size": 128,
        "tile_size": 64,
        "visual_token_budget": 64,
        "pgfc_top_k": 4,
        "fine_tokens_per_region": 4,
        "mask_resolution": 4,
        "image_token": IMAGE_TOKEN,
        "image_token_id": image_token_id,
    }
    kwargs.update(overrides)
    return OmniPathConfig(**kwargs)


def init_tiny(out_dir: str | Path, seed: int = 0, **overrides: object) -> Path:
    """Write a tiny random OmniPath checkpoint (config, safetensors, tokenizer, generation config) to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(TINY_VOCAB)
    config = tiny_omnipath_config(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), vocab_size=len(tokenizer), **overrides)
    config.tiny = True
    torch.manual_seed(seed)
    model = OmniPathForConditionalGeneration(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # OmniPath is not itself a GenerationMixin, so its generation defaults are written explicitly.
    # Random weights would often emit only special tokens (empty text); suppressing them keeps the noise visible.
    GenerationConfig(
        max_new_tokens=48, do_sample=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=[tokenizer.pad_token_id, tokenizer.bos_token_id, config.image_token_id],
        begin_suppress_tokens=[tokenizer.eos_token_id],
    ).save_pretrained(out_dir)
    return out_dir


def init_tiny_llava(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random LLaVA checkpoint (CLIP vision tower + Llama) with its processor to ``out_dir``.

    It stands in for any local LLaVA-family checkpoint in tests of the ``hf-vlm`` backend.
    """
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(TINY_VOCAB)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = tiny_vision_config("clip_vision_model", image_size=32)
    vision["projection_dim"] = 64
    config = LlavaConfig(
        vision_config=vision,
        text_config={
            "model_type": "llama", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        },
        image_token_index=image_token_id,
        image_seq_length=16,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    config.tiny = True
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        max_new_tokens=32, do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out_dir)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
        vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )
    processor.save_pretrained(out_dir)
    return out_dir


def base_omnipath_config(image_token_id: int, vocab_size: int, **overrides: object) -> OmniPathConfig:
    """A full-size layout for GPU benchmarks: CLIP ViT-B/16 + UNI-style ViT-L/16 (LayerScale) + a ~1B Llama.

    Random weights; sizes only. 224-px tiles at 5× and 20×, a 576-token visual budget.
    """
    kwargs: dict[str, object] = {
        "general_vision_config": {"model_type": "clip_vision_model", "hidden_size": 768, "intermediate_size": 3072,
                                  "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 224,
                                  "patch_size": 16},
        "pathology_vision_config": {"model_type": "dinov2", "hidden_size": 1024, "mlp_ratio": 4,
                                    "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 224,
                                    "patch_size": 16, "layerscale_value": 1e-5},
        "text_config": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632,
                        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                        "vocab_size": vocab_size, "max_position_embeddings": 4096, "tie_word_embeddings": False,
                        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
        "hidden_size": 1024, "tile_size": 224, "visual_token_budget": 576, "pgfc_top_k": 16,
        "fine_tokens_per_region": 16, "image_token": IMAGE_TOKEN, "image_token_id": image_token_id,
    }
    kwargs.update(overrides)
    return OmniPathConfig(**kwargs)


def init_checkpoint(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """``init_tiny`` for ``size="tiny"``; a random base-size checkpoint (benchmarks on GPU) for ``"base"``."""
    if size == "tiny":
        return init_tiny(out_dir, seed)
    if size != "base":
        raise ValueError(f"size must be 'tiny' or 'base', got {size!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(TINY_VOCAB)
    config = base_omnipath_config(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), len(tokenizer))
    config.tiny = True  # random weights all the same: the text is noise
    torch.manual_seed(seed)
    OmniPathForConditionalGeneration(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    GenerationConfig(max_new_tokens=32, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id,
                     suppress_tokens=[tokenizer.pad_token_id, tokenizer.bos_token_id, config.image_token_id],
                     begin_suppress_tokens=[tokenizer.eos_token_id]).save_pretrained(out_dir)
    return out_dir
