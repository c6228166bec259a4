"""Opening and reading one slide file.

Coordinate spaces: ``l0_`` = level-0 pixels; ``level`` = index into the slide's pyramid (0 = finest);
``l_`` = pixels of that level. Sizes are (w, h).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import openslide
from PIL import Image

from slides.errors import SlideError
from slides.fastjpeg import JpegTiffReader
from slides.metadata import SlideMetadata, metadata_from_openslide
from slides.sniff import describe_unsupported

#: Largest region ``read_region`` returns, in pixels (OpenSlide allocates 4 bytes per pixel).
MAX_REGION_PIXELS = 64 * 1024 * 1024

#: Largest piece read at once while building thumbnails, in level px per side.
_THUMB_CHUNK = 4096

_DAMAGED = "the file is damaged or incomplete; upload it again or the scanner's original"


def _white_rgb(im: Image.Image) -> Image.Image:
    """RGB image from OpenSlide's RGBA, transparent areas (outside the scanned area) white."""
    if im.mode != "RGBA":
        return im.convert("RGB")
    if im.getchannel("A").getextrema()[0] == 255:
        return im.convert("RGB")
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, im).convert("RGB")


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SlideError("file not found", path=str(path)) from None
    except PermissionError:
        raise SlideError("permission denied reading the file", path=str(path)) from None
    except OSError as e:
        raise SlideError(f"cannot access the file: {e.strerror}", path=str(path)) from e
    if path.is_dir():
        raise SlideError(
            "a folder, not a slide file; give the slide file itself (for DICOM, one .dcm file of the series;"
            " for MIRAX, the .mrxs file)",
            path=str(path),
        )
    if not path.is_file():
        raise SlideError("not a regular file", path=str(path))
    if st.st_size == 0:
        raise SlideError("empty file (0 bytes); the upload was probably interrupted, upload it again", path=str(path))
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise SlideError(f"cannot read the file: {e.strerror}", path=str(path)) from e


def _open_handle(path: Path) -> openslide.OpenSlide:
    """An OpenSlide handle, or SlideError. Never falls back to PIL (``openslide.open_slide`` would)."""
    name = str(path)
    fmt = openslide.OpenSlide.detect_format(name)
    if fmt is None:
        raise SlideError(describe_unsupported(path), path=name)
    try:
        return openslide.OpenSlide(name)
    except openslide.OpenSlideUnsupportedFormatError:
        raise SlideError(describe_unsupported(path), path=name) from None
    except openslide.OpenSlideError as e:
        raise SlideError(f"{fmt} file that cannot be opened ({e}); {_DAMAGED}", path=name) from e
    except OSError as e:  # e.g. a DICOM sibling file vanished while the folder was scanned
        raise SlideError(f"cannot read the file: {e}", path=name) from e


class _Handle:
    """An OpenSlide handle plus the number of reads using it, so it is closed only when none is."""

    def __init__(self, osr: openslide.OpenSlide) -> None:
        self.osr = osr
        self.users = 0
        self.retired = False


class Slide:
    """An open whole-slide image. Thread-safe. Use ``open_slide`` to make one; close it (or use ``with``).

    A pixel read that fails poisons OpenSlide's handle (every later call on it fails too): the Slide then
    drops that handle and the next read opens a fresh one, so one bad tile does not break the slide.
    """

    def __init__(self, path: Path, osr: openslide.OpenSlide) -> None:
        self.path = path
        self.metadata: SlideMetadata = metadata_from_openslide(osr)
        self._lock = threading.Lock()
        self._handle: _Handle | None = _Handle(osr)
        self._closed = False
        self._poisoned = False
        self._reader: JpegTiffReader | None = None
        self._reader_probed = False

    # --- shape -------------------------------------------------------------------------------------
    @property
    def level_count(self) -> int:
        return self.metadata.level_count

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(w, h) px of each level, finest first."""
        return self.metadata.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 px per level px, per level."""
        return self.metadata.level_downsamples

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (w, h) px."""
        return self.metadata.width, self.metadata.height

    @property
    def poisoned(self) -> bool:
        """True after a failed read, until the next read has reopened the file."""
        return self._poisoned

    @property
    def closed(self) -> bool:
        return self._closed

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is ≤ ``downsample`` (level-0 px per output px), as OpenSlide."""
        downsamples = self.level_downsamples
        for level in range(1, len(downsamples)):
            if downsample < downsamples[level]:
                return level - 1
        return len(downsamples) - 1

    # --- handle life ------------------------------------------------------------------------------
    @contextmanager
    def _borrow(self) -> Iterator[openslide.OpenSlide]:
        with self._lock:
            if self._closed:
                raise SlideError("the slide has been closed", path=str(self.path))
            if self._handle is None:  # poisoned earlier: start afresh
                self._handle = _Handle(_open_handle(self.path))
                self._poisoned = False
            handle = self._handle
            handle.users += 1
        try:
            yield handle.osr
        except openslide.OpenSlideError as e:
            with self._lock:
                if self._handle is handle:
                    self._handle = None
                    self._poisoned = True
                handle.retired = True
            raise SlideError(f"cannot decode the slide's pixels ({e}); {_DAMAGED}", path=str(self.path)) from e
        finally:
            with self._lock:
                handle.users -= 1
                close_now = handle.retired and handle.users == 0
            if close_now:
                handle.osr.close()

    def close(self) -> None:
        """Release the file. Reads still running finish first; later reads raise SlideError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handle, self._handle = self._handle, None
            close_now = False
            if handle is not None:
                handle.retired = True
                close_now = handle.users == 0
            reader, self._reader = self._reader, None
        if close_now and handle is not None:
            handle.osr.close()
        if reader is not None:
            reader.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Slide({str(self.path)!r}, format={self.metadata.format!r})"

    def jpeg_reader(self) -> JpegTiffReader | None:
        """The direct JPEG tile reader for this file, if its format allows one (built once, lazily)."""
        with self._lock:
            if self._closed:
                raise SlideError("the slide has been closed", path=str(self.path))
            if not self._reader_probed:
                self._reader_probed = True
                self._reader = JpegTiffReader.probe(self.path, self.metadata.format, self.level_dimensions)
            return self._reader

    # --- pixels -----------------------------------------------------------------------------------
    def read_region(self, l0_xy: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """RGB pixels of ``size`` (w, h) level px at ``level``, top-left at ``l0_xy`` (level-0 px).

        Outside the scanned area (or the slide) pixels are white. Raises SlideError for a level outside
        the pyramid, an empty or oversized region, or a read failure.
        """
        if not 0 <= level < self.level_count:
            raise SlideError(f"level {level} does not exist (the slide has {self.level_count})")
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise SlideError(f"empty region size {w}×{h}")
        if w * h > MAX_REGION_PIXELS:
            raise SlideError(f"region of {w}×{h} px is too large; read it in pieces")
        with self._borrow() as osr:
            im = osr.read_region((int(l0_xy[0]), int(l0_xy[1])), level, (w, h))
        return _white_rgb(im)

    def get_thumbnail(self, max_size: tuple[int, int]) -> Image.Image:
        """The whole slide as RGB, fitting in ``max_size`` (w, h) px with the aspect ratio kept.

        Reads the best pyramid level in pieces of at most 4096² px, so memory stays bounded even for a
        slide without a pyramid.
        """
        l0_w, l0_h = self.dimensions
        downsample = max(l0_w / max(1, max_size[0]), l0_h / max(1, max_size[1]), 1.0)
        out_w, out_h = max(1, round(l0_w / downsample)), max(1, round(l0_h / downsample))
        level = self.best_level_for_downsample(downsample)
        l_w, l_h = self.level_dimensions[level]
        level_ds = self.level_downsamples[level]
        out = Image.new("RGB", (out_w, out_h), (255, 255, 255))
        for l_y in range(0, l_h, _THUMB_CHUNK):
            for l_x in range(0, l_w, _THUMB_CHUNK):
                c_w, c_h = min(_THUMB_CHUNK, l_w - l_x), min(_THUMB_CHUNK, l_h - l_y)
                o_x0, o_y0 = math.floor(l_x * out_w / l_w), math.floor(l_y * out_h / l_h)
                o_x1 = math.floor((l_x + c_w) * out_w / l_w) if l_x + c_w < l_w else out_w
                o_y1 = math.floor((l_y + c_h) * out_h / l_h) if l_y + c_h < l_h else out_h
                if o_x1 <= o_x0 or o_y1 <= o_y0:
                    continue
                chunk = self.read_region((round(l_x * level_ds), round(l_y * level_ds)), level, (c_w, c_h))
                if chunk.size != (o_x1 - o_x0, o_y1 - o_y0):
                    chunk = chunk.resize((o_x1 - o_x0, o_y1 - o_y0), Image.Resampling.LANCZOS, reducing_gap=3.0)
                out.paste(chunk, (o_x0, o_y0))
        return out

    def associated_image(self, name: str) -> Image.Image:
        """An associated picture ("label", "macro", "thumbnail", …) as RGB; SlideError if there is none."""
        if name not in self.metadata.associated_images:
            available = ", ".join(self.metadata.associated_images) or "none"
            raise SlideError(f"the slide has no {name!r} image (it has: {available})")
        with self._borrow() as osr:
            im = osr.associated_images[name]
        return _white_rgb(im)


def open_slide(path: str | Path, *, check_pixels: bool = True) -> Slide:
    """Open a whole-slide image file. Raises SlideError with a person-readable reason.

    Refuses missing, empty and unreadable files, folders, and ordinary pictures (PNG, JPEG, plain
    non-tiled TIFF, …) from their headers alone, never decoding their pixels. With ``check_pixels``
    (default) one small region of the coarsest level is decoded too, so a file whose pixel data is
    damaged fails here rather than on first view.
    """
    path = Path(path)
    _check_file(path)
    osr = _open_handle(path)
    slide = Slide(path, osr)
    if check_pixels:
        try:
            level = slide.level_count - 1
            l_w, l_h = slide.level_dimensions[level]
            slide.read_region((0, 0), level, (min(l_w, 64), min(l_h, 64)))
        except SlideError:
            slide.close()
            raise
    return slide
