"""Adding a slide to a case: used by the upload endpoint and by the demo command."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from django.db import transaction

from webapp.cases.models import Case
from webapp.wsi import storage
from webapp.wsi.models import Slide
from webapp.wsi.tasks import enqueue_ingest


def register_slide(
    case: Case, tmp_path: Path, sha256: str, size: int, filename: str, *, stain: str = "H&E", user=None
) -> Slide:
    """Move a complete file from MEDIA_ROOT/tmp into storage, create its `pending` row, queue ingestion.

    The row and the stored file appear together: if the row cannot be written, a file this call
    stored is removed again. Ingestion is queued only once the row is committed.
    """
    stored_path, created = storage.commit_upload(tmp_path, sha256, storage.safe_extension(filename))
    try:
        with transaction.atomic():
            slide = Slide.objects.create(
                case=case,
                original_filename=filename,
                stored_path=stored_path,
                sha256=sha256,
                size=size,
                stain=stain,
                uploaded_by=user,
            )
            transaction.on_commit(lambda: enqueue_ingest(slide.pk))
    except BaseException:
        if created:
            storage.remove_stored(stored_path)
        raise
    return slide


def add_slide_from_path(case: Case, source: Path, *, filename: str | None = None, user=None) -> Slide:
    """Copy a local file into storage as a new slide of `case` (hashing while copying)."""
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as src, tempfile.NamedTemporaryFile(
        dir=storage.tmp_dir(), prefix="import-", suffix=".part", delete=False
    ) as dst:
        tmp_path = Path(dst.name)
        try:
            while chunk := src.read(4 * 1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    try:
        return register_slide(case, tmp_path, digest.hexdigest(), size, filename or source.name, user=user)
    finally:
        tmp_path.unlink(missing_ok=True)



