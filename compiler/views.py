from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from paw_site import limits
from programs.models import Program

from . import services
from .forms import INITIAL_ROWS, CompileForm, ExampleFormSet, ImportExamplesForm
from .models import CompileJob
from .spec import MAX_EXAMPLES, merge_spec, parse_spec

ROWS_PREFIX = "examples"


def _total(data, default):
    """The posted row count, clamped to 1..MAX_EXAMPLES: it comes from the client,
    so it never decides how much work a request does."""
    try:
        total = int(data.get(f"{ROWS_PREFIX}-TOTAL_FORMS") or default)
    except (TypeError, ValueError):
        total = default
    return min(max(total, 1), MAX_EXAMPLES)


def edit_rows(data, action):
    """Apply an "add" or "remove-N" row action to posted formset data, so the
    example rows work the same with htmx and as plain form posts. An unknown
    action or a row that does not exist changes nothing."""
    data = data.copy()
    total = _total(data, 0)
    removed = action.removeprefix("remove-")
    if action == "add":
        total = min(total + 1, MAX_EXAMPLES)
    elif action.startswith("remove-") and removed.isdigit() and int(removed) < total and total > 1:
        removed = int(removed)
        for i in range(removed, total - 1):
            for field in ("input", "output"):
                data[f"{ROWS_PREFIX}-{i}-{field}"] = data.get(f"{ROWS_PREFIX}-{i + 1}-{field}", "")
        for field in ("input", "output"):
            data.pop(f"{ROWS_PREFIX}-{total - 1}-{field}", None)
        total -= 1
    data[f"{ROWS_PREFIX}-TOTAL_FORMS"] = str(total)
    return data


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def compile_view(request):
    action = request.POST.get("action", "compile")
    posted = request.POST
    source = None
    if request.method == "GET":
        source = _source_program(request)
        initial, rows = _from_program(source) if source else ({}, [{}] * INITIAL_ROWS)
        form = CompileForm(initial=initial)
        examples = ExampleFormSet(prefix=ROWS_PREFIX, initial=rows)
    elif action == "import" or (
        action == "compile" and ImportExamplesForm(request.POST, request.FILES).has_input()
    ):
        # A paste left in its box when "Compile" is pressed is imported first, to check.
        return _import_examples(request)
    elif action != "compile":
        posted = edit_rows(request.POST, action)
        # Unbound on purpose: show the edited rows, not "this field is required" yet.
        examples = ExampleFormSet(prefix=ROWS_PREFIX, initial=_rows(posted))
        form = CompileForm(initial=_fields(posted))
        if request.htmx:
            response = TemplateResponse(
                request, "compiler/compile.html#example-rows", {"examples": examples}
            )
            response["HX-Trigger-After-Swap"] = "rows-changed"  # the preview re-merges the new rows
            return response
    else:
        examples = ExampleFormSet(request.POST, prefix=ROWS_PREFIX)
        form = CompileForm(request.POST, examples=examples)
        if examples.is_valid() and form.is_valid():
            data = form.cleaned_data
            try:
                submission = services.compile_submit(
                    spec=form.merged_spec(),
                    compiler=data["compiler"],
                    name=data["name"],
                    tags=data["tags"],
                    is_public=data["is_public"],
                    caller=limits.Caller.of(request),
                )
            except limits.RateLimited as limited:
                form.add_error(None, limited.wait_message)
                response = TemplateResponse(
                    request,
                    "compiler/compile.html",
                    {"form": form, "examples": examples, "preview": _preview(posted)},
                    status=429,
                )
                response["Retry-After"] = str(limited.retry_after)
                return response
            if submission.cache_hit:
                messages.info(request, "This exact spec was compiled before: here it is.")
                return redirect(submission.program)
            if submission.joined:
                messages.info(request, "An identical compile is already running: following it.")
            return redirect(submission.job)
    return TemplateResponse(
        request,
        "compiler/compile.html",
        {
            "form": form,
            "examples": examples,
            "bulk": ImportExamplesForm(initial={"paste": posted.get("paste", "")}),
            "preview": _preview(posted),
            "source": source,
        },
    )


def _import_examples(request):
    """Add pasted or uploaded examples as rows after the filled ones (at most
    MAX_EXAMPLES in all); errors go beside the paste, nothing typed is lost."""
    rows = [r for r in _rows(request.POST) if r["input"].strip() or r["output"].strip()]
    bulk = ImportExamplesForm(request.POST, request.FILES)
    imported = 0
    if bulk.is_valid():
        added = bulk.cleaned_data["examples"]
        if len(rows) + len(added) > MAX_EXAMPLES:
            bulk.add_error(
                None,
                f"At most {MAX_EXAMPLES} examples in all: the form has {len(rows)} "
                f"and this import {len(added)}.",
            )
        else:
            rows += [{"input": x, "output": y} for x, y in added]
            imported = len(added)
            bulk = ImportExamplesForm()  # done: an empty box for the next paste
    examples = ExampleFormSet(prefix=ROWS_PREFIX, initial=rows or [{}])
    context = {"examples": examples, "bulk": bulk, "imported": imported}
    if request.htmx:
        # The rows, and the import box out of band (its errors, or emptied).
        html = render_to_string("compiler/compile.html#example-rows", context, request)
        html += render_to_string(
            "compiler/compile.html#bulk-import", context | {"oob": True}, request
        )
        response = HttpResponse(html)
        if imported:
            response["HX-Trigger-After-Swap"] = "rows-changed"
        return response
    pairs = [(r["input"], r["output"]) for r in rows]
    preview = merge_spec(
        request.POST.get("description", ""), pairs, request.POST.get("hints", "").splitlines()
    )
    context |= {"form": CompileForm(initial=_fields(request.POST)), "preview": preview}
    return TemplateResponse(request, "compiler/compile.html", context)


def _source_program(request):
    """The program named by ?from=<id> that the user may see: the form starts from its spec."""
    program_id = request.GET.get("from", "")
    if not program_id:
        return None
    return Program.objects.visible_to(request.user).filter(pk=program_id[:40]).first()


def _from_program(program):
    """(form initial, example rows) recovered from a program's spec, plus an empty row."""
    parsed = parse_spec(program.spec)
    initial = {
        "description": parsed.task,
        "hints": "\n".join(parsed.hints),
        "name": program.name,
        "tags": ", ".join(tag.name for tag in program.tags.all()),
        "is_public": program.is_public,
    }
    rows = [{"input": x, "output": y} for x, y in parsed.examples] + [{}]
    return initial, rows[:MAX_EXAMPLES]


def _rows(data):
    total = _total(data, 1)
    return [
        {f: data.get(f"{ROWS_PREFIX}-{i}-{f}", "") for f in ("input", "output")}
        for i in range(total)
    ]


def _fields(data):
    fields = {name: data.get(name, "") for name in ("description", "hints", "name", "tags")}
    return fields | {
        "compiler": data.get("compiler") or None,
        "is_public": data.get("is_public") == "on",
    }


def _preview(data):
    if not data:
        return ""
    pairs = [(row["input"], row["output"]) for row in _rows(data)]
    hints = data.get("hints", "").splitlines()
    return merge_spec(data.get("description", ""), pairs, hints)


@login_required
@require_POST
def compile_preview(request):
    """The merged spec, live, as the author types (htmx)."""
    return TemplateResponse(
        request, "compiler/compile.html#spec-preview", {"preview": _preview(request.POST)}
    )


def _job_for(request, job_id):
    visible = Program.objects.visible_to(request.user)
    return get_object_or_404(
        CompileJob.objects.select_related("program", "owner"), pk=job_id, program__in=visible
    )


@require_GET
@vary_on_headers("HX-Request")
def job_detail(request, job_id):
    job = _job_for(request, job_id)
    template = "compiler/job.html#job-status" if request.htmx else "compiler/job.html"
    can_cancel = job.is_active and (request.user == job.owner or request.user.is_staff)
    return TemplateResponse(request, template, {"job": job, "can_cancel": can_cancel})


@login_required
@require_http_methods(["GET", "POST"])
def job_cancel(request, job_id):
    job = _job_for(request, job_id)
    if request.user != job.owner and not request.user.is_staff:
        raise PermissionDenied("Only the owner can cancel this compile.")
    if request.method == "POST":
        if services.compile_cancel(job=job):
            messages.success(request, "The compile was cancelled.")
        else:
            messages.info(request, f"The compile had already {job.status}.")
        return redirect(job)
    return TemplateResponse(request, "compiler/job_cancel.html", {"job": job})


@login_required
@require_GET
def my_jobs(request):
    jobs = request.user.compile_jobs.select_related("program")
    page = Paginator(jobs, 20).get_page(request.GET.get("page"))
    return TemplateResponse(request, "compiler/my_jobs.html", {"page": page})
