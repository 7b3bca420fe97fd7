from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from . import services
from .models import Alias, Case, ModerationAction, Program, Report, Tag, Vote


class AliasInline(admin.TabularInline):
    model = Alias
    fk_name = "program"
    extra = 0
    fields = ["owner", "slug", "version", "created_by", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["owner", "created_by"]


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "owner",
        "status",
        "is_public",
        "is_hidden",
        "score",
        "download_count",
        "created_at",
    ]
    list_filter = ["status", "is_public", "is_hidden", "compiler_snapshot", "created_at", "tags"]
    search_fields = ["id", "name", "spec", "owner__username", "aliases__slug"]
    raw_id_fields = ["owner"]
    filter_horizontal = ["tags"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    readonly_fields = [
        "id",
        "compiler_alias",
        "compiler_snapshot",
        "compiler_fingerprint",
        "output_constraint",  # the compiler's, as in the bundle
        "adapter_path",
        "adapter_size",
        "adapter_sha256",
        "bundle_path",
        "bundle_size",
        "bundle_sha256",
        "score",
        "download_count",
        "created_at",
        "updated_at",
        "ready_at",
    ]
    inlines = [AliasInline]
    actions = ["unhide"]

    def has_add_permission(self, request):
        return False  # programs come from the compiler

    def save_model(self, request, obj, form, change):
        """Hiding or unhiding here goes through the services, so it is logged too."""
        if change and "is_hidden" in form.changed_data:
            if obj.is_hidden:
                reason = obj.hidden_reason or "hidden in the admin"
                services.program_hide(program=obj, actor=request.user, reason=reason)
            else:
                services.program_unhide(program=obj, actor=request.user, reason="in the admin")
        super().save_model(request, obj, form, change)

    @admin.action(description="Unhide the selected programs (logged)")
    def unhide(self, request, queryset):
        for program in queryset.filter(is_hidden=True):
            services.program_unhide(program=program, actor=request.user, reason="in the admin")


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "slug", "version", "program", "created_at"]
    list_filter = [("owner", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["slug", "owner__username", "program__id", "program__name"]
    raw_id_fields = ["owner", "program", "created_by"]
    list_select_related = ["owner", "program"]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["user", "program", "value", "created_at"]
    list_filter = ["value", "created_at"]
    search_fields = ["user__username", "program__id", "program__name"]
    raw_id_fields = ["user", "program"]
    list_select_related = ["user", "program"]

    def has_change_permission(self, request, obj=None):
        return False  # a changed vote would leave the program's score stale


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["program", "type", "author", "passed", "created_at"]
    list_filter = ["type", "passed", "created_at"]
    search_fields = ["input", "expected", "note", "program__id", "author__username"]
    raw_id_fields = ["program", "author"]
    list_select_related = ["program", "author"]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["program", "reason", "reporter", "status", "created_at", "resolved_by"]
    list_filter = ["status", "reason", "created_at"]
    search_fields = ["note", "program__id", "program__name", "reporter__username"]
    raw_id_fields = ["program", "reporter", "resolved_by"]
    readonly_fields = ["resolved_by", "resolved_at", "created_at"]
    list_select_related = ["program", "reporter", "resolved_by"]
    actions = ["resolve"]

    @admin.action(description="Resolve the selected reports (logged)")
    def resolve(self, request, queryset):
        for report in queryset.open():
            try:
                services.report_resolve(
                    report=report, actor=request.user, resolution="via the admin"
                )
            except ValidationError as error:
                self.message_user(request, error.messages[0], messages.WARNING)


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    """The log is read-only: it is the record of what moderators did."""

    list_display = ["created_at", "actor", "action", "program", "target_user", "reason"]
    list_filter = ["action", "created_at"]
    search_fields = ["reason", "actor__username", "target_user__username", "program__id"]
    list_select_related = ["actor", "program", "target_user"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
