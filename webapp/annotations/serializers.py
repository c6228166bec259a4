"""Request bodies of the annotation and label endpoints (responses use the models' `to_dict`)."""

from __future__ import annotations

from rest_framework import serializers

from webapp.annotations import limits
from webapp.annotations.geometry import GeometryError, clean_geometry
from webapp.annotations.models import HEX_COLOR, Annotation, Label, ObjectType, Shape
from webapp.wsi.models import Slide


def slide_size(slide: Slide) -> tuple[float | None, float | None]:
    """Level-0 width and height from the ingested metadata; None while unknown (slide not ingested yet)."""
    width, height = slide.metadata.get("width"), slide.metadata.get("height")
    if isinstance(width, (int, float)) and isinstance(height, (int, float)):
        return float(width), float(height)
    return None, None


class AnnotationWriteSerializer(serializers.Serializer):
    """POST (all fields) and PATCH (partial) bodies. Context: `slide`."""

    geometry = serializers.JSONField()
    shape = serializers.ChoiceField(choices=Shape.choices, required=False, allow_blank=True)
    label = serializers.PrimaryKeyRelatedField(queryset=Label.objects.all(), required=False, allow_null=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    note = serializers.CharField(max_length=20_000, required=False, allow_blank=True, trim_whitespace=False)
    object_type = serializers.ChoiceField(choices=ObjectType.choices, required=False)
    nucleus_geometry = serializers.JSONField(required=False, allow_null=True)

    def _clean(self, value: object, what: str):
        width, height = slide_size(self.context["slide"])
        try:
            return clean_geometry(value, width=width, height=height, max_vertices=limits.MAX_VERTICES)
        except GeometryError as exc:
            raise serializers.ValidationError(f"{what}: {exc}") from None

    def validate_geometry(self, value: object):
        return self._clean(value, "geometry")

    def validate_nucleus_geometry(self, value: object):
        if value is None:
            return None
        clean = self._clean(value, "nucleus_geometry")
        if clean.geometry["type"] not in ("Polygon", "MultiPolygon"):
            raise serializers.ValidationError("a nucleus must be a Polygon or MultiPolygon")
        return clean.geometry

    def validate_label(self, label: Label | None) -> Label | None:
        if label is not None and label.department_id != self.context["slide"].case.department_id:
            raise serializers.ValidationError("this label belongs to another department's label set")
        return label

    def validate(self, attrs: dict) -> dict:
        clean = attrs.get("geometry")
        shape = attrs.get("shape")
        if clean is not None:
            kind = clean.geometry["type"]
            if shape in (Shape.RECTANGLE, Shape.ELLIPSE) and kind != "Polygon":
                raise serializers.ValidationError({"shape": f"a {shape} is stored as a Polygon, not a {kind}"})
            if shape == Shape.RECTANGLE and len(clean.geometry["coordinates"][0]) != 5:
                raise serializers.ValidationError({"shape": "a rectangle is a Polygon of 4 corners (5 positions)"})
        object_type = attrs.get("object_type", self.instance.object_type if self.instance else ObjectType.ANNOTATION)
        if attrs.get("nucleus_geometry") is not None and object_type != ObjectType.CELL:
            raise serializers.ValidationError({"nucleus_geometry": "only cells have a nucleus"})
        return attrs


class AnnotationPatchSerializer(AnnotationWriteSerializer):
    version = serializers.IntegerField(min_value=1, required=False)
    object_type = None
    nucleus_geometry = None

    def __init__(self, instance: Annotation | None = None, **kwargs) -> None:
        super().__init__(instance, partial=True, **kwargs)


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["id", "department", "name", "color"]
        read_only_fields = ["id"]

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("a label needs a name")
        return value

    def validate_color(self, value: str) -> str:
        value = value.strip().lower()
        if not HEX_COLOR.match(value):
            raise serializers.ValidationError("colour must be #rrggbb")
        return value

    def validate_department(self, department):
        if self.instance is not None and department != self.instance.department:
            raise serializers.ValidationError("a label cannot move to another department")
        return department
