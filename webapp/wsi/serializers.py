from __future__ import annotations

from rest_framework import serializers

from webapp.wsi.models import Slide, SlideStatus

_METADATA_FIELDS = [
    "format",
    "vendor",
    "width",
    "height",
    "level_count",
    "level_dimensions",
    "level_downsamples",
    "mpp_x",
    "mpp_y",
    "objective_power",
    "associated_images",
]


class SlideSerializer(serializers.ModelSerializer):
    filename = serializers.CharField(source="original_filename", read_only=True)
    error = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    dzi_url = serializers.SerializerMethodField()

    class Meta:
        model = Slide
        fields = [
            "id",
            "case",
            "filename",
            "stain",
            "status",
            "error",
            "sha256",
            "size",
            "tissue_fraction",
            "thumbnail_url",
            "dzi_url",
            "created_at",
            "ingested_at",
        ]
        read_only_fields = fields

    def get_error(self, slide: Slide) -> str | None:
        return slide.failure_reason or None if slide.status == SlideStatus.FAILED else None

    def get_thumbnail_url(self, slide: Slide) -> str | None:
        return f"/api/slides/{slide.pk}/thumbnail.jpeg" if slide.is_ready else None

    def get_dzi_url(self, slide: Slide) -> str | None:
        return f"/api/slides/{slide.pk}/dzi.dzi" if slide.is_ready else None

    def to_representation(self, slide: Slide) -> dict:
        data = super().to_representation(slide)
        # Normalised metadata at the top level: null until the slide is ready (mpp/objective may stay null).
        for key in _METADATA_FIELDS:
            data[key] = slide.metadata.get(key)
        return data


class SlideUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    case = serializers.IntegerField()
    stain = serializers.CharField(max_length=64, required=False, default="H&E")
