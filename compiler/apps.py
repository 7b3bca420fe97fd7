from django.apps import AppConfig


class CompilerConfig(AppConfig):
    name = "compiler"
