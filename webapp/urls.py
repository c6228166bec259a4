from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from webapp import spa
from webapp.accounts import views as accounts
from webapp.audit.views import AuditEventList
from webapp.cases.views import CaseViewSet, TurnaroundStats
from webapp.wsi.views import SlideViewSet

router = SimpleRouter()
router.register("cases", CaseViewSet, basename="case")
router.register("slides", SlideViewSet, basename="slide")

api = [
    path("auth/csrf/", accounts.CsrfView.as_view()),
    path("auth/login/", accounts.LoginView.as_view()),
    path("auth/logout/", accounts.LogoutView.as_view()),
    path("auth/me/", accounts.MeView.as_view()),
    path("auth/token/", accounts.TokenView.as_view()),
    path("departments/", accounts.DepartmentList.as_view()),
    path("", include("webapp.annotations.urls")),
    path("", include("webapp.analysis.urls")),
    path("audit/", AuditEventList.as_view()),
    path("stats/turnaround/", TurnaroundStats.as_view()),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema")),
    *router.urls,
]

urlpatterns = [
    path("api/", include(api)),
    path("admin/", admin.site.urls),
    re_path(r"^assets/(?P<path>.+)$", spa.asset),
    path("", spa.index),
    re_path(r"^(?P<path>(?:cases|slides|login)(?:/.*)?)$", spa.index),
]

handler404 = "webapp.api.not_found"
handler500 = "webapp.api.server_error"
