from django.urls import path

from . import views

urlpatterns = [
    path("compile/", views.compile_view, name="compile"),
    path("compile/preview/", views.compile_preview, name="compile_preview"),
    path("compile/jobs/", views.my_jobs, name="my_jobs"),
    path("compile/jobs/<uuid:job_id>/", views.job_detail, name="compile_job"),
    path("compile/jobs/<uuid:job_id>/cancel/", views.job_cancel, name="compile_job_cancel"),
]
