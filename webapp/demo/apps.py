from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`python manage.py demo`: the embedded demo behind `make demo`."""

    name = "webapp.demo"
    label = "demo"
