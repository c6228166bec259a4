"""Writing annotations: every change bumps `version`, appends a history row and is broadcast after commit.

Concurrent edits are settled in the database: an update is `UPDATE ... WHERE id = %s AND version = %s`,
so of two writers that saw the same version exactly one matches a row; the other gets `StaleVersion`
with the current state.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from webapp.annotations import bulk, limits
from webapp.annotations.events import broadcast_on_commit
from webapp.annotations.geometry import BBox
from webapp.annotations.models import Annotation, AnnotationHistory, HistoryAction, Label, shape_for
from webapp.annotations.qupath import ParsedFeature, QuPathImportError
from webapp.wsi.models import Slide

# Fields a PATCH may change; the bounding box follows `geometry`.
EDITABLE = ("geometry", "shape", "label", "name", "note")


class StaleVersion(Exception):
    """Someone else changed the annotation first; `current` is its state now."""

    def __init__(self, current: Annotation) -> None:
        super().__init__(f"annotation {current.pk} is at version {current.version}")
        self.current = current


class NotDeleted(Exception):
    pass


@dataclass(frozen=True)
class ImportResult:
    created: int
    labels_created: list[str]
    repaired: list[tuple[int, str]]  # (feature index, reason)


def create_annotation(slide: Slide, user, *, geometry: dict, bbox: BBox, label: Label | None = None,
                      shape: str = "", name: str = "", note: str = "", object_type: str = "annotation",
                      nucleus_geometry: dict | None = None, model_id: str = "", job_id: int | None = None) -> Annotation:
    """Create one annotation (by `user`, or by a model for an analysis job when `model_id` is given)."""
    annotation = Annotation(slide=slide, geometry=geometry, label=label, shape=shape, name=name, note=note,
                            object_type=object_type, nucleus_geometry=nucleus_geometry, author=user,
                            model_id=model_id, job_id=job_id)
    annotation.set_bbox(bbox)
    with transaction.atomic():
        annotation.save()
        _history(annotation, HistoryAction.CREATED, user, before=None)
        broadcast_on_commit(slide.pk, {"type": "annotation.created", "annotation": annotation.to_dict()})
    return annotation


def update_annotation(annotation: Annotation, user, expected_version: int, changes: dict,
                      bbox: BBox | None = None) -> Annotation:
    """Apply `changes` (a subset of EDITABLE) if the annotation is still at `expected_version`."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    columns = {("label_id" if k == "label" else k): (v.pk if k == "label" and v is not None else v)
               for k, v in changes.items()}
    if "geometry" in changes:
        if bbox is None:
            raise ValueError("a new geometry needs its bounding box")
        columns.update(min_x=bbox.min_x, min_y=bbox.min_y, max_x=bbox.max_x, max_y=bbox.max_y,
                       extent_class=bbox.extent_class)
    return _swap(annotation, user, expected_version, HistoryAction.UPDATED, columns, alive=True)


def delete_annotation(annotation: Annotation, user, expected_version: int | None = None) -> Annotation:
    """Soft delete: the row stays (admins can restore it) and leaves every listing."""
    return _swap(annotation, user, expected_version, HistoryAction.DELETED,
                 {"deleted_at": timezone.now(), "deleted_by_id": user.pk}, alive=True)


def restore_annotation(annotation: Annotation, user) -> Annotation:
    if annotation.deleted_at is None:
        raise NotDeleted()
    return _swap(annotation, user, None, HistoryAction.RESTORED, {"deleted_at": None, "deleted_by_id": None},
                 alive=False)


def _swap(annotation: Annotation, user, expected_version: int | None, action: str, columns: dict,
          *, alive: bool) -> Annotation:
    with transaction.atomic():
        if expected_version is None:
            # No precondition from the client: change whatever is current, holding the row meanwhile.
            current = Annotation.objects.select_for_update().get(pk=annotation.pk)
            expected_version = current.version
        else:
            current = Annotation.objects.get(pk=annotation.pk)
        if current.version != expected_version or (current.deleted_at is None) != alive:
            raise StaleVersion(current)
        before = current.snapshot()
        now = timezone.now()
        matched = Annotation.objects.filter(
            pk=current.pk, version=expected_version, deleted_at__isnull=alive
        ).update(version=F("version") + 1, updated_at=now, **columns)
        if matched != 1:
            # Lost the race between our read and our write: report the winner's state.
            raise StaleVersion(Annotation.objects.get(pk=current.pk))
        current.refresh_from_db()
        _history(current, action, user, before=before, at=now)
        event = "annotation.deleted" if action == HistoryAction.DELETED else (
            "annotation.created" if action == HistoryAction.RESTORED else "annotation.updated")
        broadcast_on_commit(current.slide_id, {"type": event, "annotation": current.to_dict()})
    return current


def _history(annotation: Annotation, action: str, user, *, before: dict | None, at=None) -> None:
    AnnotationHistory.objects.create(
        annotation=annotation, version=annotation.version, action=action, actor=user,
        at=at or annotation.updated_at, before=before, after=annotation.snapshot(),
    )


def import_features(slide: Slide, user, features: list[ParsedFeature], *, may_create_labels: bool) -> ImportResult:
    """Store checked QuPath features on `slide` in one transaction: all of them or none.

    Classifications map to the labels of the slide's department by name; a missing one is created
    when `may_create_labels` (admins), otherwise the import is refused naming the first feature using it.
    """
    department_id = slide.case.department_id
    labels = {label.name: label for label in Label.objects.filter(department_id=department_id)}
    missing: dict[str, tuple[int, str | None]] = {}
    for index, feature in enumerate(features):
        c = feature.classification
        if c is not None and c.name not in labels and c.name not in missing:
            missing[c.name] = (index, c.color)
    if missing and not may_create_labels:
        name, (index, _) = next(iter(missing.items()))
        known = ", ".join(sorted(labels)) or "none yet"
        raise QuPathImportError(
            f"feature {index}: classification {name!r} is not in the department's label set "
            f"(labels: {known}); an admin can add it, or import the file to create it",
            index,
        )

    now = timezone.now()
    with transaction.atomic():
        for name, (_, color) in missing.items():
            labels[name] = Label.objects.create(department_id=department_id, name=name, color=color or "#ff0000")
        label_ids = [labels[f.classification.name].pk if f.classification else None for f in features]
        if connection.vendor == "postgresql":
            bulk.copy_import(slide, user, features, label_ids, now)
        else:
            _orm_import(slide, user, features, label_ids, now)
        # One event for the whole file: viewers reload their viewport instead of receiving every row.
        broadcast_on_commit(slide.pk, {"type": "annotation.imported", "slide": slide.pk, "count": len(features)})
    repaired = [(i, f.repaired) for i, f in enumerate(features) if f.repaired]
    return ImportResult(len(features), sorted(missing), repaired)


def _orm_import(slide: Slide, user, features: list[ParsedFeature], label_ids: list[int | None], now) -> None:
    """bulk_create in batches: the portable path (SQLite in the embedded demo)."""
    rows = []
    for feature, label_id in zip(features, label_ids, strict=True):
        row = Annotation(
            slide=slide, object_type=feature.object_type, geometry=feature.geometry,
            nucleus_geometry=feature.nucleus_geometry, shape=shape_for(feature.geometry), label_id=label_id,
            name=feature.name, qupath_properties=feature.extra_properties, author=user,
        )
        if feature.uuid is not None:
            row.uuid = feature.uuid
        row.set_bbox(feature.bbox)
        rows.append(row)
    Annotation.objects.bulk_create(rows, batch_size=limits.IMPORT_BATCH_SIZE)
    AnnotationHistory.objects.bulk_create(
        (AnnotationHistory(annotation=row, version=1, action=HistoryAction.IMPORTED, actor=user, at=now,
                           before=None, after=row.snapshot()) for row in rows),
        batch_size=limits.IMPORT_BATCH_SIZE,
    )
