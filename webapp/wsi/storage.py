"""Content-addressed slide storage under MEDIA_ROOT.

    slides/<sha[:2]>/<sha>/slide<.ext>     the uploaded file, stored once per content
    slides/<sha[:2]>/<sha>/unpacked/        a multi-file slide unpacked from a ZIP upload (archives.py)
    derived/<sha[:2]>/<sha>/thumbnail.jpeg  renders made by ingestion
    tmp/                                    uploads in flight (same filesystem, so commit is a rename)

Each slide file sits alone in its folder because OpenSlide reads every DICOM file of a folder.
Names are generated here; nothing a client sends becomes part of a path.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from django.conf import settings

# Extensions OpenSlide uses to pick a reader; anything else is stored without one
# (TIFF-based formats are recognised by content).
_KNOWN_EXTENSIONS = {
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm", ".dicom", ".zip",
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def tmp_dir() -> Path:
    path = media_root() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_extension(client_filename: str) -> str:
    suffix = Path(client_filename.replace("\\", "/")).suffix.lower()
    return suffix if suffix in _KNOWN_EXTENSIONS else ""


def _sha_dir(kind: str, sha256: str) -> Path:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return media_root() / kind / sha256[:2] / sha256


def slide_path(stored_path: str) -> Path:
    path = (media_root() / stored_path).resolve()
    if media_root().resolve() not in path.parents:
        raise ValueError(f"stored path escapes MEDIA_ROOT: {stored_path!r}")
    return path


def derived_dir(sha256: str) -> Path:
    return _sha_dir("derived", sha256)


def commit_upload(tmp_path: Path, sha256: str, extension: str) -> tuple[str, bool]:
    """Move a finished upload into content-addressed storage.

    Returns (path relative to MEDIA_ROOT, created). When the same content is already stored, the
    upload is discarded and the existing file is reused (created=False).
    """
    folder = _sha_dir("slides", sha256)
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(p for p in folder.iterdir() if p.name.startswith("slide") and p.is_file())
    if existing:
        tmp_path.unlink(missing_ok=True)
        return str(existing[0].relative_to(media_root())), False
    target = folder / f"slide{extension}"
    os.replace(tmp_path, target)
    return str(target.relative_to(media_root())), True


def remove_stored(stored_path: str) -> None:
    path = slide_path(stored_path)
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def write_atomic(target: Path, data: bytes) -> None:
    """Write bytes so readers see either the old file or the whole new one, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
