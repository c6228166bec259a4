"""A thread-safe, bounded pool of open slides for tile servers and workers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from slides.slide import Slide, open_slide


@dataclass
class _Entry:
    slide: Slide
    users: int = 0
    evicted: bool = False


class SlideCache:
    """LRU of open ``Slide`` objects keyed by resolved path, at most ``max_open`` of them.

    ``with cache.get(path) as slide:`` borrows a slide. A slide evicted (or dropped) while borrowed is
    closed when its last borrower returns it, never under a reader's feet. A slide whose read failed
    during a borrow (it is "poisoned") is dropped when returned, so the next borrower gets a fresh open.
    Opening errors (SlideError) propagate and nothing is cached.
    """

    def __init__(self, max_open: int = 16) -> None:
        if max_open < 1:
            raise ValueError("max_open must be >= 1")
        self.max_open = max_open
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, _Entry] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, Path)):
            return False
        with self._lock:
            return Path(path).resolve() in self._entries

    @contextmanager
    def get(self, path: str | Path) -> Iterator[Slide]:
        """Borrow the open slide for ``path`` (opened on first use). Raises SlideError if it will not open."""
        key = Path(path).resolve()
        entry = self._acquire(key)
        try:
            yield entry.slide
        finally:
            self._release(key, entry)

    def _acquire(self, key: Path) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.users += 1
                self._entries.move_to_end(key)
                return entry
        # open outside the lock: opening can take a while and must not stall readers of other slides
        slide = open_slide(key, check_pixels=False)
        to_close: list[Slide] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(slide)
                self._entries[key] = entry
            else:  # another thread opened it meanwhile: use theirs
                to_close.append(slide)
            entry.users += 1
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_open:
                old_key, old = next(iter(self._entries.items()))
                if old is entry:
                    break
                del self._entries[old_key]
                old.evicted = True
                if old.users == 0:
                    to_close.append(old.slide)
        for s in to_close:
            s.close()
        return entry

    def _release(self, key: Path, entry: _Entry) -> None:
        close = False
        with self._lock:
            entry.users -= 1
            if entry.slide.poisoned and not entry.evicted:
                if self._entries.get(key) is entry:
                    del self._entries[key]
                entry.evicted = True
            close = entry.evicted and entry.users == 0
        if close:
            entry.slide.close()

    def clear(self) -> None:
        """Drop every slide; borrowed ones close when returned."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            idle = []
            for entry in entries:
                entry.evicted = True
                if entry.users == 0:
                    idle.append(entry.slide)
        for s in idle:
            s.close()

    close = clear
