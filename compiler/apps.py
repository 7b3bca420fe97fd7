from django.apps import AppConfig


class CompilerConfig(AppConfig):
    name = "compiler"

    def ready(self):
        from programs.models import install_prompt_formats

        from .registry import prompt_format_of

        install_prompt_formats(prompt_format_of)
