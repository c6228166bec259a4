from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    """Ask OmniPath: analysis jobs on the GPU queue, streamed to every browser watching them."""

    name = "webapp.analysis"
    label = "analysis"

    def ready(self) -> None:
        from webapp.analysis import checks  # noqa: F401  (registers the settings check)
