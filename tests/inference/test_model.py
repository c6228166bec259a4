"""The OmniPath model as a transformers model: config validation, save/load round trip, tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from inference.config import OmniPathConfig
from inference.modeling_omnipath import COARSE, OmniPathForConditionalGeneration
from inference.tiny import tiny_omnipath_config


def test_round_trip_gives_identical_logits_and_features(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    model.save_pretrained(tmp_path)
    again = OmniPathForConditionalGeneration.from_pretrained(tmp_path).eval()
    image = model.config.image_token_id
    ids = torch.tensor([[1] + [image] * 5 + [40, 41, 42, 43]])
    visual = torch.randn(1, 5, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(ids, visual).logits, again(ids, visual).logits)
        tokens = model.tile_features(model.encode_general(pixels), model.encode_pathology(pixels), COARSE)
        tokens_again = again.tile_features(again.encode_general(pixels), again.encode_pathology(pixels), COARSE)
        assert torch.equal(tokens, tokens_again)
        assert tokens.shape == (3, model.config.hidden_size)


def test_tiny_checkpoint_is_about_twenty_million_parameters(tiny_model_dir: Path) -> None:
    model = OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir)
    assert 15e6 < sum(p.numel() for p in model.parameters()) < 25e6
    assert model.config.tiny is True


def test_tokenizer_is_saved_with_the_checkpoint(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    config = OmniPathConfig.from_pretrained(tiny_model_dir)
    assert tokenizer.convert_tokens_to_ids(config.image_token) == config.image_token_id
    text = "Perineural invasion? é ✓"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text


def test_config_refuses_a_budget_without_room_for_the_overview() -> None:
    with pytest.raises(ValueError, match="visual_token_budget"):
        tiny_omnipath_config(image_token_id=3, visual_token_budget=17, pgfc_top_k=4, fine_tokens_per_region=4)


def test_config_refuses_an_unsupported_language_model() -> None:
    with pytest.raises(ValueError, match="text_config"):
        tiny_omnipath_config(image_token_id=3, text_config={"model_type": "gpt2"})


def test_qwen2_language_model_works_too(tmp_path: Path) -> None:
    config = tiny_omnipath_config(image_token_id=3, text_config={
        "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64})
    model = OmniPathForConditionalGeneration(config).eval()
    ids = torch.tensor([[3, 3, 10, 11]])
    with torch.no_grad():
        logits = model(ids, torch.zeros(1, 2, config.hidden_size)).logits
    assert logits.shape == (1, 4, 64)


def test_mismatched_visual_token_count_is_a_clear_error(tiny_model_dir: Path) -> None:
    model = OmniPathForConditionalGeneration.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[model.config.image_token_id] * 2 + [40]])
    with pytest.raises(ValueError, match="image placeholders"):
        model(ids, torch.zeros(1, 3, model.config.hidden_size))
