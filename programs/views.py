from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET

from .models import Program


@require_GET
def program_detail(request, program_id):
    program = get_object_or_404(
        Program.objects.visible_to(request.user).select_related("owner").prefetch_related("tags"),
        pk=program_id,
    )
    job = program.jobs.first()
    return TemplateResponse(request, "programs/detail.html", {"program": program, "job": job})
