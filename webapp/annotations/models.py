"""Annotations on slides, their labels and their append-only change history.

Geometry is GeoJSON in level-0 pixel coordinates (QuPath's convention, origin top-left). The
bounding box is stored beside it in indexed columns so viewport queries need no PostGIS: see
`AnnotationQuerySet.intersecting`.
"""

from __future__ import annotations

import json
import re
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from webapp.accounts.models import DepartmentScopedQuerySet
from webapp.annotations.geometry import MAX_EXTENT_CLASS, MIN_EXTENT_CLASS, BBox
from webapp.wsi.models import Slide

HEX_COLOR = re.compile(r"^#[0-9a-f]{6}$")


class LabelQuerySet(DepartmentScopedQuerySet):
    department_id_field = "department_id"


class Label(models.Model):
    """One entry of a department's label set (QuPath calls it a classification)."""

    department = models.ForeignKey("accounts.Department", on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=7, default="#ff0000", help_text="#rrggbb")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LabelQuerySet.as_manager()

    class Meta:
        ordering = ["department_id", "name"]
        constraints = [models.UniqueConstraint(fields=["department", "name"], name="unique_label_per_department")]

    def __str__(self) -> str:
        return self.name

    @property
    def rgb(self) -> list[int]:
        return [int(self.color[i : i + 2], 16) for i in (1, 3, 5)]

    def to_dict(self) -> dict:
        return {"id": self.pk, "department": self.department_id, "name": self.name, "color": self.color}


class ObjectType(models.TextChoices):
    """QuPath's object types, kept through import and export."""

    ANNOTATION = "annotation", "Annotation"
    DETECTION = "detection", "Detection"
    CELL = "cell", "Cell"
    TILE = "tile", "Tile"


class Shape(models.TextChoices):
    """How the geometry was drawn; rectangles and ellipses are stored as polygons."""

    POLYGON = "polygon", "Polygon"
    RECTANGLE = "rectangle", "Rectangle"
    ELLIPSE = "ellipse", "Ellipse"
    POINT = "point", "Point"
    LINE = "line", "Line"
    MULTIPOLYGON = "multipolygon", "Multipolygon"


def shape_for(geometry: dict) -> str:
    """The shape hint of an imported geometry (QuPath's GeoJSON does not say rectangle or ellipse)."""
    return {"Point": Shape.POINT, "MultiPoint": Shape.POINT, "LineString": Shape.LINE, "Polygon": Shape.POLYGON,
            "MultiPolygon": Shape.MULTIPOLYGON}[geometry["type"]].value


class AnnotationQuerySet(models.QuerySet["Annotation"]):
    def visible_to(self, user) -> AnnotationQuerySet:
        return self.filter(slide__in=Slide.objects.visible_to(user).values("pk"))

    def alive(self) -> AnnotationQuerySet:
        return self.filter(deleted_at__isnull=True)

    def intersecting(self, x0: float, y0: float, x1: float, y1: float) -> AnnotationQuerySet:
        """Annotations whose bounding box meets the level-0 rectangle [x0, x1] × [y0, y1].

        One index range per extent class (see geometry.extent_class): an annotation at most 2**c px
        wide that reaches x0 starts at or after x0 - 2**c, so each range is as narrow as the viewport
        plus the class size instead of running from the slide's left edge.
        """
        ranges = Q()
        for c in range(MIN_EXTENT_CLASS, MAX_EXTENT_CLASS + 1):
            part = Q(extent_class=c, min_x__lte=x1, min_y__lte=y1)
            if c < MAX_EXTENT_CLASS:
                part &= Q(min_x__gte=x0 - 2**c, min_y__gte=y0 - 2**c)
            ranges |= part
        return self.filter(ranges, max_x__gte=x0, max_y__gte=y0)


class Annotation(models.Model):
    slide = models.ForeignKey(Slide, on_delete=models.CASCADE, related_name="annotations")
    # QuPath's object id, kept through import and export.
    uuid = models.UUIDField(default=uuid.uuid4, editable=False)
    object_type = models.CharField(max_length=16, choices=ObjectType.choices, default=ObjectType.ANNOTATION)
    shape = models.CharField(max_length=16, choices=Shape.choices, blank=True)
    geometry = models.JSONField(help_text="GeoJSON geometry, level-0 px, origin top-left.")
    nucleus_geometry = models.JSONField(null=True, blank=True, help_text="Cells only: the nucleus polygon.")
    # Level-0 bounding box of `geometry`, for viewport queries.
    min_x = models.FloatField()
    min_y = models.FloatField()
    max_x = models.FloatField()
    max_y = models.FloatField()
    extent_class = models.PositiveSmallIntegerField()
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations")
    name = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True, max_length=20_000)
    # Other QuPath properties (measurements, isLocked, color, ...), written back on export.
    qupath_properties = models.JSONField(default=dict, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    # Provenance: made by a person (`author`), or by a model for an analysis job.
    model_id = models.CharField(max_length=200, blank=True)
    job_id = models.BigIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    objects = AnnotationQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["slide", "extent_class", "min_x", "min_y"],
                condition=Q(deleted_at__isnull=True),
                name="annotation_viewport",
            ),
            models.Index(fields=["slide", "deleted_at"], name="annotation_slide_deleted"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} on slide {self.slide_id}"

    def set_bbox(self, bbox: BBox) -> None:
        self.min_x, self.min_y, self.max_x, self.max_y = bbox.min_x, bbox.min_y, bbox.max_x, bbox.max_y
        self.extent_class = bbox.extent_class

    def snapshot(self) -> dict:
        """The editable state, as kept in history rows."""
        return {
            "geometry": self.geometry,
            "shape": self.shape,
            "object_type": self.object_type,
            "nucleus_geometry": self.nucleus_geometry,
            "label": self.label_id,
            "name": self.name,
            "note": self.note,
            "deleted": self.deleted_at is not None,
        }

    def to_dict(self) -> dict:
        """The API representation (also sent on the live channel, so JSON-safe throughout)."""
        return _representation(self.__dict__ | {"id": self.pk}, self.geometry, self.nucleus_geometry)

    # Listing columns for `json_from_row`: geometry comes as JSON text, spliced into the output unparsed.
    ROW_FIELDS = ("id", "uuid", "slide_id", "shape", "object_type", "label_id", "name", "note", "author_id",
                  "version", "model_id", "job_id", "created_at", "updated_at", "deleted_at")

    @staticmethod
    def json_from_row(row: dict, geometry_json: str, nucleus_json: str | None) -> str:
        """`to_dict()` as JSON text from a `values(*ROW_FIELDS)` row, without decoding the geometry."""
        body = json.dumps(_representation(row, None, None), separators=(",", ":"))
        return body.replace('"geometry":null', f'"geometry":{geometry_json}', 1).replace(
            '"nucleus_geometry":null', f'"nucleus_geometry":{nucleus_json or "null"}', 1)


class HistoryAction(models.TextChoices):
    CREATED = "created", "Created"
    IMPORTED = "imported", "Imported"
    UPDATED = "updated", "Updated"
    DELETED = "deleted", "Deleted"
    RESTORED = "restored", "Restored"


class AnnotationHistory(models.Model):
    """One change to an annotation: who, when, and the state before and after. Rows are never changed."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="history")
    version = models.PositiveIntegerField(help_text="The annotation's version after this change.")
    action = models.CharField(max_length=16, choices=HistoryAction.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    at = models.DateTimeField()
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["annotation_id", "version", "id"]
        indexes = [models.Index(fields=["annotation", "version"], name="annotation_history_version")]
        verbose_name_plural = "annotation history"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("annotation history is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("annotation history is append-only")

    def to_dict(self) -> dict:
        return {
            "id": self.pk,
            "annotation": self.annotation_id,
            "version": self.version,
            "action": self.action,
            "actor": self.actor_id,
            "actor_name": self.actor.username if self.actor_id else None,
            "at": _iso(self.at),
            "before": self.before,
            "after": self.after,
        }


def _representation(fields: dict, geometry, nucleus_geometry) -> dict:
    provenance = ({"kind": "model", "model_id": fields["model_id"], "job_id": fields["job_id"]} if fields["model_id"]
                  else {"kind": "person", "user": fields["author_id"]})
    return {
        "id": fields["id"],
        "uuid": str(fields["uuid"]),
        "slide": fields["slide_id"],
        "geometry": geometry,
        "shape": fields["shape"],
        "object_type": fields["object_type"],
        "nucleus_geometry": nucleus_geometry,
        "label": fields["label_id"],
        "name": fields["name"],
        "note": fields["note"],
        "author": fields["author_id"],
        "version": fields["version"],
        "provenance": provenance,
        "created_at": _iso(fields["created_at"]),
        "updated_at": _iso(fields["updated_at"]),
        "deleted_at": _iso(fields["deleted_at"]),
    }


def _iso(value) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
