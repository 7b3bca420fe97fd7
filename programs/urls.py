from django.urls import path, register_converter

from . import views
from .models import RESERVED_SLUGS


class NamespaceConverter:
    """A username in `/<user>/<slug>/`. Reserved words never match, so the
    site's own pages (e.g. `/api/v1/`) are not taken for program names,
    whatever order the URL patterns are included in."""

    regex = r"[\w.@+-]+"

    def to_python(self, value):
        if value.lower() in RESERVED_SLUGS:
            raise ValueError(value)
        return value

    def to_url(self, value):
        return value


class ProgramSlugConverter(NamespaceConverter):
    regex = r"[a-z0-9][a-z0-9-]*[a-z0-9]"


register_converter(NamespaceConverter, "namespace")
register_converter(ProgramSlugConverter, "programslug")

urlpatterns = [
    path("hub/", views.hub, name="hub"),
    path("p/<str:program_id>/", views.program_detail, name="program_detail"),
    path("p/<str:program_id>/vote/", views.program_vote, name="program_vote"),
    path("p/<str:program_id>/cases/", views.program_case, name="program_case"),
    path("p/<str:program_id>/try/", views.program_try, name="program_try"),
    path("p/<str:program_id>/report/", views.program_report, name="program_report"),
    path("p/<str:program_id>/name/", views.program_alias, name="program_alias"),
    path(
        "p/<str:program_id>/download/<str:kind>/",
        views.program_download,
        name="program_download",
    ),
    path("moderation/", views.moderation_queue, name="moderation"),
    path(
        "moderation/reports/<int:report_id>/resolve/",
        views.moderation_resolve,
        name="moderation_resolve",
    ),
    path(
        "moderation/programs/<str:program_id>/hide/", views.moderation_hide, name="moderation_hide"
    ),
    path(
        "moderation/programs/<str:program_id>/unhide/",
        views.moderation_unhide,
        name="moderation_unhide",
    ),
    path(
        "moderation/programs/<str:program_id>/publish/",
        views.moderation_publish,
        name="moderation_publish",
    ),
    path("moderation/users/<int:user_id>/ban/", views.moderation_ban, name="moderation_ban"),
    path("moderation/users/<int:user_id>/unban/", views.moderation_unban, name="moderation_unban"),
    # Names last: `/<user>/<slug>/` and the official `/<slug>/`, each with `@vN`.
    path("<namespace:username>/<programslug:slug>/", views.alias_detail, name="alias"),
    path(
        "<namespace:username>/<programslug:slug>@v<int:version>/",
        views.alias_detail,
        name="alias_version",
    ),
    path("<programslug:slug>/", views.alias_detail, name="official_alias"),
    path("<programslug:slug>@v<int:version>/", views.alias_detail, name="official_alias_version"),
]
