"""Feature extraction and the feature store: reuse without reading tiles, crash-safe writes, progress."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from inference.encoders import load_encoder
from inference.extraction import extract_features
from inference.feature_store import FeatureKey, FeatureStore, file_sha256

ROOT = Path(__file__).resolve().parents[2]


def test_second_extraction_reads_no_tile(textured_slide: Path, tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    encoders = [load_encoder("tiny-clip"), load_encoder("tiny-dinov2")]
    first = extract_features(textured_slide, encoders, 20, tile_size=64, store=store)
    assert first.tiles_read == len(first.grid) > 0 and not first.reused

    moved = tmp_path / "gone.tiff"  # the slide's pixels are not even reachable any more
    second = extract_features(moved, encoders, 20, tile_size=64, store=store,
                              slide_sha256=first.slide_sha256)
    assert second.tiles_read == 0
    assert second.reused == sorted(e.cache_id for e in encoders)
    for cache_id, features in first.features.items():
        assert torch.equal(features, second.features[cache_id])
    assert (second.grid.l0_xy == first.grid.l0_xy).all()


def test_progress_counts_up_to_the_total(textured_slide: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = extract_features(textured_slide, [load_encoder("tiny-vit")], 5, tile_size=64,
                              store=FeatureStore(tmp_path), batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(result.grid), len(result.grid))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_crash_during_a_feature_write_leaves_no_trusted_file(textured_slide: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    crash = textwrap.dedent(f"""
        import os
        from inference.encoders import load_encoder
        from inference.extraction import extract_features
        from inference.feature_store import FeatureStore
        os.fsync = lambda fd: os._exit(9)   # the process dies with the file half on disk
        extract_features({str(textured_slide)!r}, [load_encoder("tiny-dinov2")], 5, tile_size=64,
                         store=FeatureStore({str(store_dir)!r}))
    """)
    done = subprocess.run([sys.executable, "-c", crash], cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    assert list(store_dir.rglob("*.part")), "the crashed write should have left its temporary file"
    assert not list(store_dir.rglob("*.safetensors"))

    encoder = load_encoder("tiny-dinov2")
    store = FeatureStore(store_dir)
    key = FeatureKey(file_sha256(textured_slide), encoder.cache_id, 5.0, 64, 64, 0.25)
    assert store.load(key) is None
    result = extract_features(textured_slide, [encoder], 5, tile_size=64, store=store)
    assert result.tiles_read > 0 and store.load(key) is not None


def test_a_damaged_feature_file_is_not_trusted(textured_slide: Path, tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    encoder = load_encoder("tiny-dinov2")
    first = extract_features(textured_slide, [encoder], 5, tile_size=64, store=store)
    path = first.paths[encoder.cache_id]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = extract_features(textured_slide, [encoder], 5, tile_size=64, store=store)
    assert again.tiles_read == len(again.grid) and not again.reused
    assert torch.equal(again.features[encoder.cache_id], first.features[encoder.cache_id])
