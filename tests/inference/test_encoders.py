"""Encoder registry: names, local weight directories, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference import InferenceError
from inference.encoders import load_encoder


def test_a_named_encoder_loads_from_a_local_directory(tmp_path: Path) -> None:
    tiny = load_encoder("tiny-dinov2")
    tiny.model.save_pretrained(tmp_path / "uni")
    uni = load_encoder("uni", tmp_path / "uni")
    tiles = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    assert torch.equal(uni.encode(tiles), tiny.encode(tiles))
    assert uni.weights_hash == tiny.weights_hash and uni.cache_id.startswith("uni@")


def test_the_environment_names_the_weights_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_encoder("tiny-vit").model.save_pretrained(tmp_path / "phikon")
    monkeypatch.setenv("PATHDESK_ENCODERS_DIR", str(tmp_path))
    assert load_encoder("phikon").embed_dim == 128


def test_missing_weights_say_where_to_put_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATHDESK_ENCODERS_DIR", raising=False)
    with pytest.raises(InferenceError, match="PATHDESK_ENCODERS_DIR"):
        load_encoder("uni")


def test_a_directory_of_the_wrong_model_type_is_refused(tmp_path: Path) -> None:
    load_encoder("tiny-clip").model.save_pretrained(tmp_path / "clip")
    with pytest.raises(InferenceError, match="expected 'dinov2'"):
        load_encoder("uni", tmp_path / "clip")


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(InferenceError, match="tiny-clip"):
        load_encoder("resnet")
