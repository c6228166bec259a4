"""Ingestion: validate a stored slide with OpenSlide, record its metadata, render thumbnail and tissue mask."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

import slides
from webapp.wsi import archives, storage
from webapp.wsi.models import Slide, SlideStatus

logger = logging.getLogger(__name__)

THUMBNAIL_MAX_PX = 1024
INTERNAL_ERROR = "internal error while processing the slide; administrators can find the details in the worker log"


@dataclass(frozen=True)
class IngestResult:
    slide_id: int
    status: str
    reason: str = ""


def thumbnail_path(sha256: str):
    return storage.derived_dir(sha256) / "thumbnail.jpeg"


def tissue_mask_path(sha256: str):
    return storage.derived_dir(sha256) / "tissue.png"


def ingest_slide(slide_id: int) -> IngestResult | None:
    """Bring a pending slide to `ready` or `failed`. Returns None when the row no longer exists."""
    slide = Slide.objects.filter(pk=slide_id).first()
    if slide is None:
        logger.warning("ingest: slide %s no longer exists; nothing to do", slide_id)
        return None
    if slide.status != SlideStatus.PENDING:
        logger.info("ingest: slide %s is already %s", slide_id, slide.status)
        return IngestResult(slide_id, slide.status, slide.failure_reason)

    stored_path = slide.stored_path
    try:
        path = storage.slide_path(stored_path)
        if archives.is_zip(path):
            path = archives.unpack(path, path.parent / "unpacked", max_bytes=settings.SLIDE_UPLOAD_MAX_BYTES).main_file
            stored_path = str(path.relative_to(storage.media_root().resolve()))
        with slides.open_slide(path) as wsi:
            metadata = wsi.metadata.to_dict()
            thumbnail = wsi.get_thumbnail((THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX))
            tissue = slides.detect_tissue(wsi)
        buffer = io.BytesIO()
        thumbnail.convert("RGB").save(buffer, "JPEG", quality=85)
        storage.write_atomic(thumbnail_path(slide.sha256), buffer.getvalue())
        storage.write_atomic(tissue_mask_path(slide.sha256), tissue.to_png())
    except (slides.SlideError, archives.ArchiveError) as exc:
        return mark_failed(slide_id, str(exc))

    with transaction.atomic():
        updated = Slide.objects.filter(pk=slide_id, status=SlideStatus.PENDING).update(
            status=SlideStatus.READY,
            stored_path=stored_path,
            metadata=metadata,
            tissue_fraction=float(tissue.fraction),
            failure_reason="",
            ingested_at=timezone.now(),
        )
    if not updated:
        logger.info("ingest: slide %s changed while it was processed; left as it is", slide_id)
    return IngestResult(slide_id, SlideStatus.READY)


def mark_failed(slide_id: int, reason: str) -> IngestResult:
    """Record a failure with a reason a person can act on. Only a pending slide changes."""
    reason = reason.strip() or INTERNAL_ERROR
    Slide.objects.filter(pk=slide_id, status=SlideStatus.PENDING).update(
        status=SlideStatus.FAILED, failure_reason=reason[:2000], ingested_at=timezone.now()
    )
    logger.info("ingest: slide %s failed: %s", slide_id, reason)
    return IngestResult(slide_id, SlideStatus.FAILED, reason)
