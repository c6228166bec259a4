"""Annotation and label routes, included under /api/ by webapp/urls.py."""

from __future__ import annotations

from django.urls import path

from webapp.annotations import views

urlpatterns = [
    path("slides/<int:slide_id>/annotations/", views.SlideAnnotations.as_view()),
    path("slides/<int:slide_id>/annotations/import", views.SlideAnnotationsImport.as_view()),
    path("slides/<int:slide_id>/annotations/import/", views.SlideAnnotationsImport.as_view()),
    path("slides/<int:slide_id>/annotations.geojson", views.SlideAnnotationsExport.as_view()),
    path("annotations/<int:annotation_id>/", views.AnnotationDetail.as_view()),
    path("annotations/<int:annotation_id>/history/", views.AnnotationHistoryView.as_view()),
    path("annotations/<int:annotation_id>/restore/", views.AnnotationRestore.as_view()),
    path("labels/", views.LabelList.as_view()),
    path("labels/<int:pk>/", views.LabelDetail.as_view()),
]
