"""The PGFC fine-tile cache: re-use across questions, crash safety, concurrent writers, bounded size."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.analysis import AnalysisRequest
from inference.backends import load_backend
from inference.feature_store import FeatureStore
from inference.fine_tile_cache import MAX_CHUNKS, FineTileCache, FineTileKey

ROOT = Path(__file__).resolve().parents[2]
KEY = FineTileKey("ab" * 32, "tiny-dinov2@0123456789abcdef", 20.0, 64)


def corners(xs: range, y: int = 0) -> np.ndarray:
    return np.array([[x * 64, y] for x in xs], dtype=np.int64)


def features_of(l0_xy: np.ndarray, dim: int = 8) -> torch.Tensor:
    """Features that depend only on the corner, so any copy of a tile must hold the same values."""
    base = torch.from_numpy(l0_xy[:, :1] * 1000 + l0_xy[:, 1:]).float()
    return base + torch.arange(dim).float()


@pytest.fixture
def fresh_backend(tiny_model_dir: Path, tmp_path: Path):  # noqa: ANN201
    return load_backend("omnipath", tiny_model_dir, device="cpu", store=FeatureStore(tmp_path / "store"))


def test_a_second_identical_question_encodes_no_fine_tile(fresh_backend, textured_slide: Path) -> None:  # noqa: ANN001
    request = AnalysisRequest(textured_slide, "Where are the crowded nuclei?", task="cancer_detection",
                              max_new_tokens=8)
    first = fresh_backend.analyze(request).run()
    second = fresh_backend.analyze(request).run()
    read = sum(region.fine_tiles for region in first.regions)
    assert first.tiles_encoded["20x"] == read > 0 and first.tiles_cached["20x"] == 0
    assert second.tiles_encoded["20x"] == 0 and second.tiles_cached["20x"] == read
    assert second.tiles_encoded["5x"] == 0 and second.tiles_cached["5x"] == second.tissue_tiles["5x"]
    assert [r.l0_box for r in second.regions] == [r.l0_box for r in first.regions]
    assert second.text == first.text and second.generated_tokens == first.generated_tokens
    assert second.task_scores == first.task_scores
    assert 0 < second.timings.fine_features <= second.timings.features


def test_new_questions_encode_only_the_fine_tiles_of_regions_not_seen_before(fresh_backend, textured_slide: Path,  # noqa: ANN001
                                                                             ) -> None:
    prompts = ["Where are the crowded purple nuclei of the carcinoma?",
               "Is the fat pale and empty, benign adipose tissue?", "Is there carcinoma?", "Describe."]
    seen: set[tuple[float, ...]] = set()
    partial = 0
    for prompt in prompts:
        result = fresh_backend.analyze(AnalysisRequest(textured_slide, prompt, max_new_tokens=1)).run()
        new = [r for r in result.regions if r.l0_box not in seen]
        old = [r for r in result.regions if r.l0_box in seen]
        assert result.tiles_encoded["20x"] == sum(r.fine_tiles for r in new), prompt
        assert result.tiles_cached["20x"] == sum(r.fine_tiles for r in old), prompt
        partial += bool(new) and bool(old)
        seen.update(r.l0_box for r in result.regions)
    assert partial, "no prompt chose partly new regions; pick prompts whose regions overlap"


def test_lookups_find_what_was_added_and_only_under_its_key(tmp_path: Path) -> None:
    cache = FineTileCache(tmp_path)
    tiles = corners(range(6))
    cache.add(KEY, tiles[:4], features_of(tiles[:4]))
    got, found = cache.lookup(KEY, tiles[::-1], 8)
    assert found.tolist() == [False, False, True, True, True, True]
    assert torch.equal(got[2:], features_of(tiles[::-1][2:]))
    for other in (FineTileKey(KEY.slide_sha256, KEY.encoder, 20.0, 224),
                  FineTileKey(KEY.slide_sha256, "tiny-dinov2@fedcba9876543210", 20.0, 64),
                  FineTileKey("cd" * 32, KEY.encoder, 20.0, 64), FineTileKey(KEY.slide_sha256, KEY.encoder, 40.0, 64)):
        assert not cache.lookup(other, tiles, 8)[1].any()


def test_a_crash_while_adding_leaves_no_trusted_chunk(tmp_path: Path) -> None:
    crash = textwrap.dedent(f"""
        import os
        import numpy as np, torch
        from inference.fine_tile_cache import FineTileCache, FineTileKey
        os.fsync = lambda fd: os._exit(9)   # the process dies with the chunk half on disk
        FineTileCache({str(tmp_path)!r}).add(FineTileKey(*{tuple(vars(KEY).values())!r}),
                                             np.array([[0, 0], [64, 0]]), torch.ones(2, 8))
    """)
    done = subprocess.run([sys.executable, "-c", crash], cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    parts = list(tmp_path.rglob("*.part"))
    assert parts and not list(tmp_path.rglob("chunk-*"))
    cache = FineTileCache(tmp_path)
    assert not cache.lookup(KEY, corners(range(2)), 8)[1].any()

    hour_ago = time.time() - 7200
    os.utime(parts[0], (hour_ago, hour_ago))  # a crashed writer's leftover goes at the next write
    cache.add(KEY, corners(range(2)), features_of(corners(range(2))))
    assert not list(tmp_path.rglob("*.part"))
    assert cache.lookup(KEY, corners(range(2)), 8)[1].all()


def test_a_damaged_chunk_is_not_trusted_and_is_removed(tmp_path: Path) -> None:
    cache = FineTileCache(tmp_path)
    path = cache.add(KEY, corners(range(3)), features_of(corners(range(3))))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert not cache.lookup(KEY, corners(range(3)), 8)[1].any()
    assert not path.exists()


def test_two_processes_adding_at_once_lose_no_tile(tmp_path: Path) -> None:
    writer = textwrap.dedent("""
        import sys, time
        import numpy as np, torch
        from inference.fine_tile_cache import FineTileCache, FineTileKey
        first, start_at = int(sys.argv[1]), float(sys.argv[2])
        cache = FineTileCache(sys.argv[3])
        key = FineTileKey(*sys.argv[4:6], float(sys.argv[6]), int(sys.argv[7]))
        time.sleep(max(0.0, start_at - time.time()))
        for chunk in range(40):
            xy = np.array([[(first + chunk * 5 + i) * 64, 0] for i in range(5)], dtype=np.int64)
            cache.add(key, xy, torch.from_numpy(xy[:, :1] * 1000 + xy[:, 1:]).float() + torch.arange(8).float())
    """)
    start_at = str(time.time() + 4)
    args = [str(tmp_path), KEY.slide_sha256, KEY.encoder, str(KEY.magnification), str(KEY.tile_size)]
    writers = [subprocess.Popen([sys.executable, "-c", writer, str(first), start_at, *args], cwd=ROOT,
                                stderr=subprocess.PIPE) for first in (0, 100)]
    for process in writers:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err.decode()[-2000:]
    tiles = corners(range(300))
    got, found = FineTileCache(tmp_path).lookup(KEY, tiles, 8)
    assert found.all()
    assert torch.equal(got, features_of(tiles))
    assert len(list(tmp_path.rglob("chunk-*"))) <= MAX_CHUNKS + 2  # merged as it grew


def test_many_chunks_of_a_slide_are_merged_into_one(tmp_path: Path) -> None:
    cache = FineTileCache(tmp_path)
    for chunk in range(MAX_CHUNKS + 1):
        cache.add(KEY, corners(range(chunk * 2, chunk * 2 + 2)), features_of(corners(range(chunk * 2, chunk * 2 + 2))))
    assert len(list(cache.folder(KEY).glob("chunk-*"))) == 1
    tiles = corners(range((MAX_CHUNKS + 1) * 2))
    got, found = cache.lookup(KEY, tiles, 8)
    assert found.all() and torch.equal(got, features_of(tiles))


def test_the_cache_stays_within_its_byte_budget_evicting_the_least_recently_used(tmp_path: Path) -> None:
    probe = FineTileCache(tmp_path / "probe").add(KEY, corners(range(10)), features_of(corners(range(10))))
    chunk_bytes = probe.stat().st_size
    cache = FineTileCache(tmp_path / "cache", max_bytes=int(3.5 * chunk_bytes))
    keys = [FineTileKey(f"{i:02d}" * 32, KEY.encoder, 20.0, 64) for i in range(4)]
    for key in keys[:3]:
        cache.add(key, corners(range(10)), features_of(corners(range(10))))
        time.sleep(0.05)
    assert cache.lookup(keys[0], corners(range(10)), 8)[1].all()  # a hit makes keys[0] the most recent
    time.sleep(0.05)
    cache.add(keys[3], corners(range(10)), features_of(corners(range(10))))
    sizes = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("chunk-*"))
    assert sizes <= 3.5 * chunk_bytes
    present = [bool(cache.lookup(key, corners(range(10)), 8)[1].all()) for key in keys]
    assert present == [True, False, True, True]


def test_a_bad_budget_in_the_environment_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inference import InferenceError

    monkeypatch.setenv("PATHDESK_FINE_CACHE_MAX_BYTES", "lots")
    with pytest.raises(InferenceError, match="PATHDESK_FINE_CACHE_MAX_BYTES"):
        FeatureStore(tmp_path)
    monkeypatch.setenv("PATHDESK_FINE_CACHE_MAX_BYTES", "1048576")
    assert FeatureStore(tmp_path).fine_tiles.max_bytes == 1 << 20
