from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    """Annotations on slides: geometry, labels, history, QuPath GeoJSON, live updates."""

    name = "webapp.annotations"
    label = "annotations"
