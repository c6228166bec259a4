"""SlideCache: bounded, closes what it evicts once nobody uses it, drops poisoned slides, thread-safe."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import slides


@pytest.fixture(scope="module")
def three_slides(testdata: Path) -> list[Path]:
    return [testdata / "svs/small.svs", testdata / "svs/CMU-1-Small-Region.svs", testdata / "tiff/boxes.tiff"]


def test_it_reuses_open_slides(three_slides: list[Path]) -> None:
    cache = slides.SlideCache(max_open=2)
    with cache.get(three_slides[0]) as a, cache.get(str(three_slides[0])) as b:
        assert a is b
    assert len(cache) == 1 and three_slides[0] in cache
    cache.clear()


def test_it_closes_evicted_slides(three_slides: list[Path]) -> None:
    cache = slides.SlideCache(max_open=2)
    with cache.get(three_slides[0]) as first:
        pass
    with cache.get(three_slides[1]), cache.get(three_slides[2]):
        pass
    assert first.closed and len(cache) == 2 and three_slides[0] not in cache
    cache.clear()


def test_a_borrowed_slide_is_closed_only_when_returned(three_slides: list[Path]) -> None:
    cache = slides.SlideCache(max_open=1)
    with cache.get(three_slides[0]) as borrowed:
        with cache.get(three_slides[1]):
            pass  # evicts the borrowed slide from the cache…
        assert not borrowed.closed  # …but its borrower can still read
        assert borrowed.read_region((0, 0), 0, (8, 8)).size == (8, 8)
    assert borrowed.closed
    cache.clear()


def test_it_drops_a_poisoned_slide(testdata: Path) -> None:
    cache = slides.SlideCache()
    bad = testdata / "bad/unreadable.svs"
    with cache.get(bad) as slide:
        with pytest.raises(slides.SlideError):
            slide.read_region((0, 0), 0, (16, 16))
    assert slide.closed and bad not in cache
    with cache.get(bad) as again:
        assert again is not slide


def test_open_errors_propagate_and_nothing_is_cached(testdata: Path) -> None:
    cache = slides.SlideCache()
    with pytest.raises(slides.SlideError, match="text file"), cache.get(testdata / "bad/base64-text.svs"):
        pass
    assert len(cache) == 0


def test_it_survives_many_threads(three_slides: list[Path], jpeg_slide: Path) -> None:
    cache = slides.SlideCache(max_open=2)
    paths = [*three_slides, jpeg_slide]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(40):
                with cache.get(paths[(seed + i) % len(paths)]) as slide:
                    dz = slides.DeepZoom(slide)
                    top = dz.level_count - 1
                    assert dz.get_tile_jpeg(top, 0, 0)[:2] == b"\xff\xd8"
                    assert not slide.closed
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) <= 2
    cache.clear()
