"""Multi-file slides uploaded as one ZIP archive: a DICOM WSI series, or a MIRAX .mrxs with its folder.

OpenSlide reads a DICOM slide from all the DICOM files of one folder, and a MIRAX slide from the
.mrxs file plus the folder of the same name; a single-file upload cannot carry either. The archive
is stored like any upload (content-addressed by its sha256) and unpacked by ingestion, once, next to
it: `slides/<sha[:2]>/<sha>/unpacked/`. The client's member names never become paths for DICOM
(files are renamed `instance-NNNN.dcm`); MIRAX needs its data file names (Slidedat.ini refers to
them), so those are kept only after a strict check (one plain name each, no folders, no `..`).
Limits guard against archive bombs: member count, total unpacked size, compression ratio.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"
MAX_MEMBERS = 20_000
# A JPEG- or JPEG 2000-compressed slide barely compresses further; anything far beyond is a bomb.
MAX_RATIO = 200
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,127}$")


class ArchiveError(Exception):
    """The archive cannot hold a slide; the message says why and what to upload instead."""


@dataclass(frozen=True)
class Unpacked:
    main_file: Path  # what to open with OpenSlide
    kind: str  # "dicom" or "mirax"


def is_zip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == ZIP_MAGIC


def _is_dicom(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    if info.filename.lower().endswith((".dcm", ".dicom")):
        return True
    with archive.open(info) as member:
        return member.read(132)[128:132] == b"DICM"


def _check_limits(members: list[zipfile.ZipInfo], max_bytes: int) -> None:
    if len(members) > MAX_MEMBERS:
        raise ArchiveError(f"the archive holds {len(members)} files; at most {MAX_MEMBERS} are accepted")
    total = 0
    for info in members:
        if info.flag_bits & 0x1:
            raise ArchiveError("the archive is encrypted; upload it without a password")
        total += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1024 * 1024:
            raise ArchiveError(f"archive member {info.filename!r} expands {info.file_size // info.compress_size}× "
                               "— refused as a possible archive bomb")
    if total > max_bytes:
        raise ArchiveError(f"the archive unpacks to {total} bytes, over the limit of {max_bytes}")


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, max_bytes: int) -> None:
    # Count what is really written: the sizes in the directory could lie.
    written = 0
    with archive.open(info) as src, target.open("wb") as dst:
        while chunk := src.read(1024 * 1024):
            written += len(chunk)
            if written > max(info.file_size, 0) or written > max_bytes:
                raise ArchiveError(f"archive member {info.filename!r} is larger than its directory entry says")
            dst.write(chunk)


def _plain_parts(name: str) -> list[str]:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or name.startswith("/") or any(p == ".." for p in parts):
        raise ArchiveError(f"archive member {name!r} has an unsafe path")
    return parts


def unpack(archive_path: Path, destination: Path, *, max_bytes: int) -> Unpacked:
    """Unpack a slide archive into `destination` (created whole, or not at all)."""
    if destination.exists():
        return _describe(destination)
    try:
        return _unpack(archive_path, destination, max_bytes)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ArchiveError(f"damaged ZIP archive ({exc}); upload it again") from None


def _unpack(archive_path: Path, destination: Path, max_bytes: int) -> Unpacked:
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"damaged ZIP archive ({exc}); upload it again") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members:
            _plain_parts(info.filename)
        members = [i for i in members if not _plain_parts(i.filename)[-1].startswith((".", "__MACOSX"))
                   and "__MACOSX" not in i.filename]
        _check_limits(members, max_bytes)
        staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=".unpacking-"))
        try:
            dicom = [info for info in members if _is_dicom(archive, info)]
            mrxs = [info for info in members if info.filename.lower().endswith(".mrxs")]
            if dicom and not mrxs:
                for number, info in enumerate(sorted(dicom, key=lambda i: i.filename), start=1):
                    _copy_member(archive, info, staging / f"instance-{number:04d}.dcm", max_bytes)
            elif len(mrxs) == 1:
                _unpack_mirax(archive, members, mrxs[0], staging, max_bytes)
            else:
                raise ArchiveError(
                    "a ZIP upload must hold exactly one slide: the DICOM files of one series, or one MIRAX "
                    ".mrxs file with its folder"
                )
            try:
                os.replace(staging, destination)
            except OSError:
                if not destination.is_dir():
                    raise
                # The same archive was unpacked by another ingestion meanwhile: use that copy.
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return _describe(destination)


def _unpack_mirax(archive, members, mrxs: zipfile.ZipInfo, staging: Path, max_bytes: int) -> None:
    mrxs_parts = _plain_parts(mrxs.filename)
    stem = mrxs_parts[-1][: -len(".mrxs")]
    prefix = [*mrxs_parts[:-1], stem]
    data = [info for info in members if _plain_parts(info.filename)[:-1] == prefix]
    if not data:
        raise ArchiveError(f"the MIRAX folder {stem!r} next to {mrxs_parts[-1]!r} is missing from the archive")
    _copy_member(archive, mrxs, staging / "slide.mrxs", max_bytes)
    folder = staging / "slide"
    folder.mkdir()
    for info in data:
        name = _plain_parts(info.filename)[-1]
        if not _SAFE_NAME.match(name):
            raise ArchiveError(f"MIRAX data file name {name!r} is not a plain file name")
        _copy_member(archive, info, folder / name, max_bytes)


def _describe(destination: Path) -> Unpacked:
    if (destination / "slide.mrxs").is_file():
        return Unpacked(destination / "slide.mrxs", "mirax")
    instances = sorted(destination.glob("instance-*.dcm"))
    if not instances:
        raise ArchiveError("the unpacked archive holds no slide")
    return Unpacked(instances[0], "dicom")
