"""Streaming slide uploads: written to disk chunk by chunk, hashed on the way, size-limited."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework.exceptions import APIException

from webapp.wsi import storage


class UploadTooLarge(APIException):
    status_code = 413
    default_code = "upload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the upload limit of {format_bytes(limit)}")


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class HashedUpload(UploadedFile):
    """An upload that lies complete on disk in MEDIA_ROOT/tmp, with its sha256 already known."""

    def __init__(self, path: Path, name: str, content_type: str, size: int, sha256: str) -> None:
        # No open handle: the view only moves the file (see storage.commit_upload).
        super().__init__(None, name=name, content_type=content_type, size=size)
        self.path = path
        self.sha256 = sha256

    def temporary_file_path(self) -> str:
        return str(self.path)


class SlideUploadHandler(FileUploadHandler):
    """Writes each file part to a temp file under MEDIA_ROOT/tmp while computing its sha256.

    Every temp file is recorded on the request (`request.upload_tmp_paths`) so the view can remove
    it whatever happens later; over the size limit the upload stops with 413 at once.
    """

    chunk_size = 1024 * 1024

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        fd, name = tempfile.mkstemp(dir=storage.tmp_dir(), prefix="upload-", suffix=".part")
        self._path = Path(name)
        self._handle = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0
        self._limit = settings.SLIDE_UPLOAD_MAX_BYTES
        paths = getattr(self.request, "upload_tmp_paths", None)
        if paths is None:
            paths = []
            self.request.upload_tmp_paths = paths
        paths.append(self._path)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._size += len(raw_data)
        if self._size > self._limit:
            self._handle.close()
            self._path.unlink(missing_ok=True)
            raise UploadTooLarge(self._limit)
        self._hash.update(raw_data)
        self._handle.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> HashedUpload:
        self._handle.close()
        return HashedUpload(
            self._path, self.file_name or "", self.content_type or "", self._size, self._hash.hexdigest()
        )

    def upload_interrupted(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()
            self._path.unlink(missing_ok=True)


def discard_request_uploads(request) -> None:
    """Remove every temp file this request's uploads left behind (the committed one is already moved)."""
    for path in getattr(request, "upload_tmp_paths", []):
        Path(path).unlink(missing_ok=True)
