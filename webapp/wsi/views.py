"""Slide REST endpoints: upload, list, detail. Tiles are served by webapp/wsi/tiles.py."""

from __future__ import annotations

import logging
import unicodedata

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from webapp import audit
from webapp.cases.models import Case
from webapp.wsi.models import Slide
from webapp.wsi.serializers import SlideSerializer, SlideUploadSerializer
from webapp.wsi.services import register_slide
from webapp.wsi.uploads import HashedUpload, discard_request_uploads

logger = logging.getLogger(__name__)


def display_filename(name: str) -> str:
    """The client's file name as text for people: last path part, no control characters, bounded."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return name.strip()[:255]


@extend_schema(parameters=[OpenApiParameter("case", int, description="Only the slides of this case.")])
class SlideViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SlideSerializer

    def get_queryset(self):
        slides = Slide.objects.visible_to(self.request.user)
        case = self.request.query_params.get("case")
        if case is not None:
            if not case.isdigit():
                raise ValidationError({"case": "must be a case id"})
            slides = slides.filter(case_id=int(case))
        return slides

    def retrieve(self, request, *args, **kwargs):
        slide = self.get_object()
        audit.record(request.user, "slide.viewed", slide, case=slide.case)
        return Response(self.get_serializer(slide).data)

    def get_throttles(self):
        if self.action == "create":
            self.throttle_scope = "uploads"
            return [ScopedRateThrottle()]
        return super().get_throttles()

    def get_parsers(self):
        if self.request is not None and self.request.method == "POST":
            return [MultiPartParser()]
        return super().get_parsers()

    @extend_schema(request={"multipart/form-data": SlideUploadSerializer}, responses={201: SlideSerializer})
    def create(self, request):
        """Upload a slide file (multipart `file` + `case`); ingestion runs in the background."""
        try:
            return self._create(request)
        finally:
            discard_request_uploads(request._request)

    def _create(self, request):
        form = SlideUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        if not isinstance(upload, HashedUpload):
            raise ValidationError({"file": "the upload was not received as a file"})
        case = Case.objects.visible_to(request.user).filter(pk=form.validated_data["case"]).first()
        if case is None:
            raise ValidationError({"case": "no such case"})
        if case.is_signed_out:
            return Response({"error": f"case {case.accession_number} is signed out and read-only"},
                            status=status.HTTP_409_CONFLICT)
        if upload.size == 0:
            raise ValidationError({"file": "the file is empty (0 bytes)"})

        slide = register_slide(
            case,
            upload.path,
            upload.sha256,
            upload.size,
            display_filename(upload.name),
            stain=form.validated_data["stain"],
            user=request.user,
        )
        return Response(SlideSerializer(slide).data, status=status.HTTP_201_CREATED)
