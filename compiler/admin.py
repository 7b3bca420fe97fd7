from django.contrib import admin

from .models import CompileJob


@admin.register(CompileJob)
class CompileJobAdmin(admin.ModelAdmin):
    """Compile jobs as the workers left them: for looking into a failure, not for
    editing (a job's state belongs to its worker and compiler.services)."""

    list_display = ["id", "program", "owner", "status", "stage", "attempts", "created_at"]
    list_filter = ["status", "stage", "created_at"]
    search_fields = ["id", "program__id", "owner__username", "error"]
    list_select_related = ["program", "owner"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "program",
        "owner",
        "status",
        "stage",
        "percent",
        "error",
        "error_detail",
        "attempts",
        "stage_seconds",
        "worker",
        "client_ip",
        "heartbeat_at",
        "created_at",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # jobs come from compile_submit

    def has_change_permission(self, request, obj=None):
        return False
