from django.urls import path

from . import views

urlpatterns = [
    path("p/<str:program_id>/", views.program_detail, name="program_detail"),
]
