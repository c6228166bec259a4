"""Annotation REST endpoints. Look up what the user may see (else 404), check the role, call a service."""

from __future__ import annotations

import json
import math

from django.db.models import F, Q, TextField
from django.db.models.functions import Cast
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import APIException, ParseError, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.permissions import can_annotate, can_manage
from webapp.annotations import limits, qupath, services
from webapp.annotations.models import Annotation, Label
from webapp.annotations.serializers import (
    AnnotationPatchSerializer,
    AnnotationWriteSerializer,
    LabelSerializer,
    slide_size,
)
from webapp.wsi.models import Slide

ANNOTATE_DENIED = "your role may not annotate slides"


def _slide(request, slide_id: int) -> Slide:
    return get_object_or_404(Slide.objects.visible_to(request.user).select_related("case"), pk=slide_id)


def _annotation(request, annotation_id: int) -> Annotation:
    """An annotation the user may see; soft-deleted ones only for admins."""
    annotations = Annotation.objects.visible_to(request.user).select_related("slide__case")
    if not can_manage(request.user):
        annotations = annotations.alive()
    return get_object_or_404(annotations, pk=annotation_id)


class CaseSignedOut(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the case is signed out: its annotations are read-only (add an addendum instead)"
    default_code = "case_signed_out"


def _require_annotator(request, slide: Slide) -> None:
    if not can_annotate(request.user):
        raise PermissionDenied(ANNOTATE_DENIED)
    if slide.case.is_signed_out:
        raise CaseSignedOut()


def _parse_bbox(raw: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in raw.split(","))
    except ValueError:
        raise ValidationError({"bbox": "expected x0,y0,x1,y1 in level-0 pixels"}) from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
        raise ValidationError({"bbox": "expected finite numbers with x0 ≤ x1 and y0 ≤ y1"})
    return x0, y0, x1, y1


class AnnotationCursor(CursorPagination):
    """Keyset pages in id order: stable while others add annotations, cheap at any depth."""

    ordering = "id"
    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000


def _stale(exc: services.StaleVersion) -> Response:
    return Response(
        {"error": f"someone else changed this annotation first (it is now at version {exc.current.version})",
         "current": exc.current.to_dict()},
        status=status.HTTP_409_CONFLICT,
    )


@extend_schema(responses=OpenApiTypes.OBJECT)
class SlideAnnotations(APIView):
    """List (viewport + label filters, cursor-paginated) and create annotations of a slide."""

    @extend_schema(parameters=[
        OpenApiParameter("bbox", str, description="x0,y0,x1,y1 in level-0 px: only annotations meeting it."),
        OpenApiParameter("label", str, description="Label ids or names, comma-separated."),
        OpenApiParameter("deleted", bool, description="Admins: only soft-deleted annotations."),
        OpenApiParameter("page_size", int),
        OpenApiParameter("cursor", str),
    ])
    def get(self, request, slide_id: int) -> Response:
        slide = _slide(request, slide_id)
        annotations = Annotation.objects.filter(slide=slide)
        if request.query_params.get("deleted") in ("1", "true"):
            if not can_manage(request.user):
                raise PermissionDenied("only admins see deleted annotations")
            annotations = annotations.filter(deleted_at__isnull=False)
        else:
            annotations = annotations.alive()
        paginator = AnnotationCursor()
        if bbox := request.query_params.get("bbox"):
            # Ordered by an expression of the id, not the id: with `ORDER BY id LIMIT n` PostgreSQL tends to
            # walk the primary key over the whole slide instead of using the viewport index ranges.
            annotations = annotations.intersecting(*_parse_bbox(bbox)).annotate(page_key=F("id") + 0)
            paginator.ordering = "page_key"
        if labels := request.query_params.get("label"):
            wanted = [v.strip() for v in labels.split(",") if v.strip()]
            ids = [int(v) for v in wanted if v.isdigit()]
            annotations = annotations.filter(Q(label_id__in=ids) | Q(label__name__in=wanted))
        rows = annotations.values(*Annotation.ROW_FIELDS, *(["page_key"] if bbox else []),
                                  geometry_json=Cast("geometry", TextField()),
                                  nucleus_json=Cast("nucleus_geometry", TextField()))
        page = paginator.paginate_queryset(rows, request, view=self)
        items = ",".join(Annotation.json_from_row(r, r["geometry_json"], r["nucleus_json"]) for r in page)
        links = json.dumps({"next": paginator.get_next_link(), "previous": paginator.get_previous_link()})
        # The page is assembled as text: geometries go out as PostgreSQL stored them, never parsed here.
        return HttpResponse(f'{links[:-1]},"results":[{items}]}}', content_type="application/json")

    @extend_schema(request=AnnotationWriteSerializer)
    def post(self, request, slide_id: int) -> Response:
        slide = _slide(request, slide_id)
        _require_annotator(request, slide)
        form = AnnotationWriteSerializer(data=request.data, context={"slide": slide})
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        clean = data.pop("geometry")
        annotation = services.create_annotation(slide, request.user, geometry=clean.geometry, bbox=clean.bbox,
                                                **data)
        body = annotation.to_dict()
        if clean.repaired:
            body["repaired"] = clean.repaired
        return Response(body, status=status.HTTP_201_CREATED, headers={"ETag": f'"{annotation.version}"'})


def _expected_version(request, form_version: int | None) -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return form_version
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ValidationError({"If-Match": "expected the annotation's version, e.g. \"3\""})
    if form_version is not None and form_version != int(value):
        raise ValidationError({"version": "the body's version and the If-Match header disagree"})
    return int(value)


@extend_schema(responses=OpenApiTypes.OBJECT)
class AnnotationDetail(APIView):
    def get(self, request, annotation_id: int) -> Response:
        annotation = _annotation(request, annotation_id)
        return Response(annotation.to_dict(), headers={"ETag": f'"{annotation.version}"'})

    @extend_schema(request=AnnotationPatchSerializer)
    def patch(self, request, annotation_id: int) -> Response:
        """Change an annotation seen at `version` (body) or `If-Match: "<version>"`; 409 if it moved on."""
        annotation = _annotation(request, annotation_id)
        _require_annotator(request, annotation.slide)
        if annotation.deleted_at is not None:
            raise ValidationError({"error": "the annotation is deleted; restore it first"})
        form = AnnotationPatchSerializer(annotation, data=request.data, context={"slide": annotation.slide})
        form.is_valid(raise_exception=True)
        changes = dict(form.validated_data)
        expected = _expected_version(request, changes.pop("version", None))
        if expected is None:
            return Response({"error": "send the version you last saw: a `version` field or an If-Match header"},
                            status=status.HTTP_428_PRECONDITION_REQUIRED)
        clean = changes.pop("geometry", None)
        if clean is not None:
            changes["geometry"] = clean.geometry
        try:
            annotation = services.update_annotation(annotation, request.user, expected, changes,
                                                    bbox=clean.bbox if clean else None)
        except services.StaleVersion as exc:
            return _stale(exc)
        return Response(annotation.to_dict(), headers={"ETag": f'"{annotation.version}"'})

    def delete(self, request, annotation_id: int) -> Response:
        """Soft delete (admins can restore). An optional If-Match makes it conditional like PATCH."""
        annotation = _annotation(request, annotation_id)
        _require_annotator(request, annotation.slide)
        if annotation.deleted_at is not None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        try:
            services.delete_annotation(annotation, request.user, _expected_version(request, None))
        except services.StaleVersion as exc:
            return _stale(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(request=None, responses=OpenApiTypes.OBJECT)
class AnnotationRestore(APIView):
    def post(self, request, annotation_id: int) -> Response:
        annotation = _annotation(request, annotation_id)
        if not can_manage(request.user):
            raise PermissionDenied("only admins restore deleted annotations")
        try:
            annotation = services.restore_annotation(annotation, request.user)
        except services.NotDeleted:
            raise ValidationError({"error": "the annotation is not deleted"}) from None
        except services.StaleVersion as exc:
            return _stale(exc)
        return Response(annotation.to_dict())


@extend_schema(responses=OpenApiTypes.OBJECT)
class AnnotationHistoryView(APIView):
    def get(self, request, annotation_id: int) -> Response:
        annotation = _annotation(request, annotation_id)
        rows = annotation.history.select_related("actor").order_by("version", "id")
        return Response({"annotation": annotation.pk, "results": [row.to_dict() for row in rows]})


class GeoJSONParser(BaseParser):
    """The request body is the QuPath export itself, read from the stream (not limited to 2.5 MB like forms)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            raise ParseError("the request body is empty; send the GeoJSON file as the body")
        try:
            return qupath.loads(stream.read())
        except qupath.QuPathImportError as exc:
            raise ParseError(exc.message) from None


@extend_schema(responses=OpenApiTypes.OBJECT)
class SlideAnnotationsImport(APIView):
    parser_classes = [GeoJSONParser]

    @extend_schema(request={"application/geo+json": OpenApiTypes.OBJECT})
    def post(self, request, slide_id: int) -> Response:
        """Import a QuPath GeoJSON export: every feature or none; errors name the feature index."""
        slide = _slide(request, slide_id)
        _require_annotator(request, slide)
        width, height = slide_size(slide)
        try:
            features = qupath.read_features(
                request.data, width=width, height=height, max_vertices=limits.MAX_VERTICES,
                max_features=limits.MAX_IMPORT_FEATURES, max_total_vertices=limits.MAX_IMPORT_VERTICES,
            )
            result = services.import_features(slide, request.user, features, may_create_labels=can_manage(request.user))
        except qupath.QuPathImportError as exc:
            return Response({"error": exc.message, "feature": exc.feature}, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"created": result.created, "labels_created": result.labels_created,
             "repaired": [{"feature": i, "reason": reason} for i, reason in result.repaired]},
            status=status.HTTP_201_CREATED,
        )


@extend_schema(responses=OpenApiTypes.OBJECT)
class SlideAnnotationsExport(APIView):
    def get(self, request, slide_id: int) -> HttpResponse:
        """All live annotations of the slide as a QuPath-readable GeoJSON FeatureCollection."""
        slide = _slide(request, slide_id)
        labels = {label.pk: label for label in Label.objects.filter(department_id=slide.case.department_id)}
        features = [qupath.to_feature(a, labels.get(a.label_id))
                    for a in Annotation.objects.filter(slide=slide).alive().order_by("id").iterator(chunk_size=2000)]
        body = json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))
        response = HttpResponse(body, content_type="application/geo+json")
        response["Content-Disposition"] = f'attachment; filename="slide-{slide.pk}-annotations.geojson"'
        return response


class LabelList(generics.ListCreateAPIView):
    """A department's label set; everyone sees their departments' labels, admins edit."""

    serializer_class = LabelSerializer

    def get_queryset(self):
        labels = Label.objects.visible_to(self.request.user)
        department = self.request.query_params.get("department")
        if department is not None:
            if not department.isdigit():
                raise ValidationError({"department": "must be a department id"})
            labels = labels.filter(department_id=int(department))
        return labels

    def perform_create(self, serializer: LabelSerializer) -> None:
        if not can_manage(self.request.user):
            raise PermissionDenied("only admins edit label sets")
        serializer.save()


class LabelDetail(generics.RetrieveUpdateAPIView):
    serializer_class = LabelSerializer

    def get_queryset(self):
        return Label.objects.visible_to(self.request.user)

    def perform_update(self, serializer: LabelSerializer) -> None:
        if not can_manage(self.request.user):
            raise PermissionDenied("only admins edit label sets")
        serializer.save()
