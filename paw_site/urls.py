from django.contrib import admin
from django.urls import include, path

from api.api import api

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", api.urls),
    path("", include("accounts.urls")),
    path("", include("compiler.urls")),
    path("", include("programs.urls")),
]
