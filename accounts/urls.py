from django.urls import path

from . import views

urlpatterns = [
    path("u/<str:username>/", views.profile, name="profile"),
    path("settings/", views.account_settings, name="account_settings"),
]
