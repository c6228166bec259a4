from django.apps import AppConfig


class WsiConfig(AppConfig):
    """Whole-slide images: upload, ingestion, DeepZoom tiles."""

    name = "webapp.wsi"
    label = "wsi"
