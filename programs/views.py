from functools import wraps

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from paw_site import limits
from runtime import services as runtime_services

from . import downloads, gallery, services
from .forms import AliasForm, CaseForm, HubFilterForm, PublishForm, ReportForm, TryForm
from .models import ARTIFACT_TYPES, Alias, Case, ModerationAction, Program, Report, Vote

User = get_user_model()

PER_PAGE = 20


# --- gallery ----------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
def hub(request):
    form = HubFilterForm(request.GET)
    form.is_valid()
    context = {"form": form, "filters": form.cleaned_data}
    # The cache key and the fragment's links come from the cleaned filters only:
    # a parameter a visitor adds (?utm=...) never reaches another visitor's page.
    params = gallery.clean_params(form.cleaned_data, request.GET.get("page"))
    key = gallery.results_key(form.cleaned_data, params.get("page"))
    results = cache.get(key) if settings.HUB_CACHE_SECONDS else None
    if results is None:
        if form.cleaned_data.get("q"):
            # A search that misses the cache costs a query: counted per caller.
            try:
                limits.hit("search", limits.Caller.of(request))
            except limits.RateLimited as limited:
                return _rate_limited_page(request, limited)
        filters = form.cleaned_data
        paginator = gallery.HubPaginator(
            Program.objects.listed(),
            PER_PAGE,
            filters={k: filters.get(k) for k in ("q", "tag", "sort")},
            count_key=gallery.count_key(q=filters.get("q"), tag=filters.get("tag")),
            rows=Program.objects.for_cards(),
        )
        page = paginator.get_page(params.get("page"))
        context["page"] = page
        # Without the request: the fragment is the same for everyone and needs
        # no context processors (the page around it runs them once).
        results = render_to_string("programs/hub.html#results", context | {"params": params})
        if settings.HUB_CACHE_SECONDS:
            cache.set(key, results, settings.HUB_CACHE_SECONDS)
    if request.htmx and not request.htmx.history_restore_request:
        return HttpResponse(results)
    tags = gallery.popular_tags()
    filters = form.cleaned_data
    if not filters.get("q") and not filters.get("tag") and not request.GET.get("page"):
        context["compiling"] = list(Program.objects.official_compiling()[:PER_PAGE])
    tag = form.cleaned_data.get("tag")
    if tag and tag not in tags:
        tags = [tag, *tags]
    return TemplateResponse(
        request, "programs/hub.html", context | {"tags": tags, "results": results}
    )


def _rate_limited_page(request, limited):
    """A front-door answer to limits.RateLimited for a plain page: 429, the wait."""
    response = TemplateResponse(request, "429.html", {"message": limited.wait_message}, status=429)
    response["Retry-After"] = str(limited.retry_after)
    return response


# --- program page ---------------------------------------------------------------------


def _visible_program(request, program_id):
    return get_object_or_404(
        Program.objects.visible_to(request.user)
        .select_related("owner")
        .prefetch_related("tags", "aliases__owner"),
        pk=program_id,
    )


def _sign_in_first(request, program):
    """Send an anonymous visitor to sign in, then back to the program page."""
    back = program.get_absolute_url()
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = f"{reverse('account_login')}?next={back}"
        return response
    return redirect_to_login(back)


def _cases_by_type(program):
    """Per case type: (value, label, newest cases, how many were checked, how many pass)."""
    cases = list(program.cases.select_related("author").order_by("-created_at")[:300])
    counts = program.cases.pass_counts()
    return [
        (value, label, [case for case in cases if case.type == value], *counts.get(value, (0, 0)))
        for value, label in Case.Type.choices
    ]


def detail_context(request, program, *, alias=None, **forms):
    """Everything the program page shows; `forms` replace the blank ones
    (a bound form with errors, after a failed post)."""
    user = request.user
    alias = alias or program.primary_alias
    my_vote = 0
    if user.is_authenticated:
        my_vote = (
            Vote.objects.filter(user=user, program=program).values_list("value", flat=True).first()
            or 0
        )
    context = {
        "program": program,
        "alias": alias,
        "versions": list(Alias.objects.versions_of(alias, user=user)) if alias else [],
        "my_vote": my_vote,
        "cases_by_type": _cases_by_type(program) if program.is_ready else [],
        "is_owner": user.is_authenticated and program.owner_id == user.pk,
        "job": None if program.is_ready else program.jobs.first(),
        "artifacts": [program.artifact(kind) for kind in ("bundle", "adapter")],
        "case_form": CaseForm(),
        "try_form": TryForm(),
        "report_form": ReportForm(),
        "alias_form": AliasForm(),
    }
    if user.is_authenticated and user.is_staff:
        context["publish_form"] = PublishForm()
        context["open_reports"] = program.reports.open().count()
    return context | forms


def _render_detail(request, program, *, alias=None, status=200, **forms):
    context = detail_context(request, program, alias=alias, **forms)
    return TemplateResponse(request, "programs/detail.html", context, status=status)


@require_GET
def program_detail(request, program_id):
    return _render_detail(request, _visible_program(request, program_id))


@require_GET
def alias_detail(request, slug, username=None, version=None):
    """`/<user>/<slug>/`, `/<slug>/` (official), each with an optional `@vN`."""
    name = f"{username}/{slug}" if username else slug
    if version:
        name += f"@v{version}"
    try:
        alias = Alias.objects.resolve(name, user=request.user)
    except Alias.DoesNotExist as error:
        raise Http404(str(error)) from error
    program = _visible_program(request, alias.program_id)
    return _render_detail(request, program, alias=alias)


# --- what people do on a program page -----------------------------------------------------


@require_POST
def program_vote(request, program_id):
    program = _visible_program(request, program_id)
    if not request.user.is_authenticated:
        return _sign_in_first(request, program)
    try:
        value = int(request.POST.get("value", ""))
        outcome = services.vote_toggle(user=request.user, program=program, value=value)
    except (ValueError, ValidationError):
        return HttpResponse("A vote is +1 or -1.", status=400)
    if request.htmx:
        return TemplateResponse(
            request, "programs/detail.html#votes", {"program": program, "my_vote": outcome.value}
        )
    return redirect(program)


@require_POST
def program_case(request, program_id):
    program = _visible_program(request, program_id)
    if not request.user.is_authenticated:
        return _sign_in_first(request, program)
    form = CaseForm(request.POST)
    if form.is_valid():
        try:
            services.case_submit(
                program=program,
                author=request.user,
                caller=limits.Caller.of(request),
                **form.cleaned_data,
            )
        except ValidationError as error:
            form.add_error(None, error)
        except limits.RateLimited as limited:
            form.add_error(None, limited.wait_message)
    if form.is_valid():
        if request.htmx:
            context = {"program": program, "cases_by_type": _cases_by_type(program)}
            context |= {"case_form": CaseForm(), "case_added": True}
            return TemplateResponse(request, "programs/detail.html#cases", context)
        messages.success(request, "Thanks: your case was added.")
        return redirect(f"{program.get_absolute_url()}#cases")
    if request.htmx:
        context = {"program": program, "cases_by_type": _cases_by_type(program), "case_form": form}
        return TemplateResponse(request, "programs/detail.html#cases", context)
    return _render_detail(request, program, case_form=form, status=400)


@require_POST
@vary_on_headers("HX-Request")
async def program_try(request, program_id):
    """Run the program on the posted input (the "Try it" box). The answer, or
    a sentence saying why there is none, replaces the box (htmx) or comes back
    in the whole page (plain form). Async: the wait for the runtime holds no
    thread (runtime.services.program_run_async)."""

    def find():
        return _visible_program(request, program_id), limits.Caller.of(request)

    program, caller = await sync_to_async(find)()
    form = TryForm(request.POST)
    outcome = {"try_form": form}
    status = 200
    retry_after = None
    if not form.is_valid():
        status = 400
    else:
        try:
            outcome["run"] = await runtime_services.program_run_async(
                program=program, input_text=form.cleaned_data["input"], caller=caller
            )
        except limits.RateLimited as limited:  # over the run quota, or too many at once
            status, retry_after = 429, limited.retry_after
            outcome["run_error"] = (
                f"You have run programs many times in a short while; try again in {retry_after} s."
                if limited.scope == "infer"
                else limited.wait_message
            )
        except runtime_services.RunError as error:
            status, outcome["run_error"] = error.status, error.message
            if status == 503:
                retry_after = runtime_services.RETRY_AFTER_SECONDS
    if request.htmx:
        response = TemplateResponse(
            request, "programs/detail.html#try-it", {"program": program, **outcome}, status=status
        )
    else:
        response = await sync_to_async(_render_detail)(request, program, status=status, **outcome)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@require_POST
def program_report(request, program_id):
    program = _visible_program(request, program_id)
    if not request.user.is_authenticated:
        return _sign_in_first(request, program)
    form = ReportForm(request.POST)
    if form.is_valid():
        services.report_submit(program=program, reporter=request.user, **form.cleaned_data)
        if request.htmx:
            return TemplateResponse(
                request, "programs/detail.html#report", {"program": program, "reported": True}
            )
        messages.success(request, "Thanks: the moderators will look at your report.")
        return redirect(program)
    if request.htmx:
        return TemplateResponse(
            request, "programs/detail.html#report", {"program": program, "report_form": form}
        )
    return _render_detail(request, program, report_form=form, status=400)


@require_POST
def program_alias(request, program_id):
    program = _visible_program(request, program_id)
    if not request.user.is_authenticated:
        return _sign_in_first(request, program)
    form = AliasForm(request.POST)
    if form.is_valid():
        try:
            alias, created = services.alias_point(
                user=request.user, slug=form.cleaned_data["slug"], program=program
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if created:
                messages.success(request, f"This program is now {alias.full_name}.")
            else:
                messages.info(request, f"{alias.full_name} already points at this program.")
            return redirect(alias.get_absolute_url())
    return _render_detail(request, program, alias_form=form, status=400)


# --- downloads -------------------------------------------------------------------------

RETRY_AFTER_SECONDS = 30


@require_http_methods(["GET", "HEAD"])
def program_download(request, program_id, kind):
    program = get_object_or_404(
        Program.objects.visible_to(request.user).prefetch_related("aliases"), pk=program_id
    )
    try:  # the same download quota as the API's
        limits.hit("download", limits.Caller.of(request))
    except limits.RateLimited as limited:
        return _rate_limited_page(request, limited)
    if kind not in ARTIFACT_TYPES:
        raise Http404("No such file.")
    if not program.is_ready:
        compiling = program.status == Program.Status.COMPILING
        response = TemplateResponse(
            request,
            "programs/not_ready.html",
            {"program": program, "job": program.jobs.first()},
            status=503 if compiling else 409,
        )
        if compiling:
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    artifact = program.artifact(kind)
    path = downloads.artifact_file(artifact)
    if path is None:
        raise Http404("This file is missing.")
    response, counts = downloads.serve(
        request, artifact, path, public=program.is_public and not program.is_hidden
    )
    if counts:
        services.program_count_download(program=program)
    return response


# --- moderation --------------------------------------------------------------------------


def staff_required(view):
    """Signed in and staff: anonymous visitors sign in first, others get 403."""

    @wraps(view)
    @login_required
    def check(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only moderators can do this.")
        return view(request, *args, **kwargs)

    return check


@staff_required
@require_GET
def moderation_queue(request):
    reports = Report.objects.open().select_related("program__owner", "reporter")
    page = Paginator(reports.order_by("created_at"), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "hidden": Program.objects.filter(is_hidden=True)
        .select_related("owner")
        .order_by("-updated_at")[:50],
        "banned": User.objects.filter(is_active=False, moderation_log__action="ban")
        .distinct()
        .order_by("username")[:50],
        "log": ModerationAction.objects.select_related("actor", "program", "target_user")[:50],
    }
    return TemplateResponse(request, "programs/moderation.html", context)


def _back(request, default):
    """Redirect to the form's `next` when it is on this site, else to `default`."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


def _moderate(request, action, success, default):
    """Run a moderation service with the posted reason; report the outcome."""
    reason = request.POST.get("reason", "").strip()[:300]
    try:
        action(reason)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(request, success)
    return _back(request, default)


@staff_required
@require_POST
def moderation_resolve(request, report_id):
    report = get_object_or_404(Report.objects.select_related("program"), pk=report_id)
    return _moderate(
        request,
        lambda reason: services.report_resolve(
            report=report, actor=request.user, resolution=reason
        ),
        "Report resolved.",
        "moderation",
    )


@staff_required
@require_POST
def moderation_hide(request, program_id):
    program = get_object_or_404(Program, pk=program_id)
    return _moderate(
        request,
        lambda reason: services.program_hide(program=program, actor=request.user, reason=reason),
        f"{program.title} is hidden.",
        program,
    )


@staff_required
@require_POST
def moderation_unhide(request, program_id):
    program = get_object_or_404(Program, pk=program_id)
    return _moderate(
        request,
        lambda reason: services.program_unhide(program=program, actor=request.user, reason=reason),
        f"{program.title} is visible again.",
        program,
    )


@staff_required
@require_POST
def moderation_ban(request, user_id):
    target = get_object_or_404(User, pk=user_id)

    def ban(reason):
        hidden = services.user_ban(user=target, actor=request.user, reason=reason)
        messages.info(request, f"{hidden} of their programs hidden.")

    return _moderate(request, ban, f"{target.username} is banned.", "moderation")


@staff_required
@require_POST
def moderation_unban(request, user_id):
    target = get_object_or_404(User, pk=user_id)
    return _moderate(
        request,
        lambda reason: services.user_unban(user=target, actor=request.user, reason=reason),
        f"{target.username} can sign in again; unhide their programs one by one.",
        "moderation",
    )


@staff_required
@require_POST
def moderation_publish(request, program_id):
    program = get_object_or_404(Program, pk=program_id)
    form = PublishForm(request.POST)
    if not form.is_valid():
        for message in form.errors.get("slug", []):
            messages.error(request, message)
        return redirect(program)
    try:
        alias = services.program_publish(program=program, actor=request.user, **form.cleaned_data)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect(program)
    messages.success(request, f"Published as {alias.full_name}.")
    return redirect(alias.get_absolute_url())
