"""Analysis routes, included under /api/ by webapp/urls.py."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from webapp.analysis.views import AnalysisViewSet, ModelInfoView

router = SimpleRouter()
router.register("analyses", AnalysisViewSet, basename="analysis")

urlpatterns = [path("analyses/model/", ModelInfoView.as_view()), *router.urls]
