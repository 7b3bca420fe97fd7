"""What people do to programs: vote, name, report cases and problems, moderate.

The web views and the REST API both call these functions, so the rules live
here once. They take keyword arguments only and raise:
- django.core.exceptions.ValidationError for bad input (a field -> messages
  dict where a field is at fault),
- django.core.exceptions.PermissionDenied when the actor may not do it.
Finding the program is the caller's job, through Program.objects.visible_to(user).
"""

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from paw_site import limits
from pawhub import manifest
from pawhub.bundle import RUNTIME_VERSION, BundleError, read_bundle, upgrade_meta, write_bundle

from . import artifacts
from .events import case_submitted
from .gallery import gallery_changed
from .models import (
    MAX_TAGS,
    TAG_PATTERN,
    Alias,
    Case,
    ModerationAction,
    Program,
    Report,
    Tag,
    Vote,
    validate_slug,
)

log = logging.getLogger(__name__)
ALIAS_RETRIES = 3
# Cases waiting for their check on the runtime, at most: per author, per program.
MAX_UNCHECKED_CASES = {"author": 5, "program": 20}
UNCHECKED_RETRY_AFTER = 30


@dataclass(frozen=True)
class VoteOutcome:
    score: int  # the program's score afterwards: always the sum of its votes
    value: int  # the user's vote afterwards: 1, -1, or 0 for none


def vote_toggle(*, user, program, value) -> VoteOutcome:
    """Vote `value` (+1 or -1). The same vote again removes it; the other one
    replaces it. The program row is locked for the whole change and the score
    is recomputed as the sum of votes, so concurrent clicks cannot make it drift."""
    if value not in (Vote.Value.UP, Vote.Value.DOWN):
        raise ValidationError({"value": "A vote is +1 or -1."})
    if not user.is_authenticated:
        raise PermissionDenied("Sign in to vote.")
    with transaction.atomic():
        Program.objects.select_for_update().only("pk").get(pk=program.pk)
        current = Vote.objects.filter(user=user, program_id=program.pk).first()
        if current is None:
            Vote.objects.create(user=user, program_id=program.pk, value=value)
            now = value
        elif current.value == value:
            current.delete()
            now = 0
        else:
            current.value = value
            current.save(update_fields=["value"])
            now = value
        score = Vote.objects.filter(program_id=program.pk).aggregate(s=Sum("value"))["s"] or 0
        Program.objects.filter(pk=program.pk).update(score=score)
    program.score = score
    return VoteOutcome(score=score, value=now)


def alias_resolve(*, name, user) -> Alias:
    """The alias for `user/slug[@vN]` or a bare official `slug[@vN]` (raw slash
    or %2F); Alias.DoesNotExist when unknown or not visible to `user`."""
    return Alias.objects.resolve(name, user=user)


def alias_point(*, user, slug, program) -> tuple[Alias, bool]:
    """Point `user/slug` at `program` (which `user` owns). A new name starts at
    v1; pointing an existing name at another program adds the next version, and
    the old versions keep resolving. Returns (alias, created); pointing the
    name at the program it already points at changes nothing."""
    if not user.is_authenticated or program.owner_id != user.pk:
        raise PermissionDenied("Only the program's author can name it.")
    return _point(owner=user, slug=slug, program=program, actor=user)


def _point(*, owner, slug, program, actor):
    try:
        validate_slug(slug)
    except ValidationError as error:
        raise ValidationError({"slug": error.messages}) from error
    if program.status == Program.Status.FAILED:
        raise ValidationError("This program did not compile, so it cannot be named.")
    for attempt in range(ALIAS_RETRIES):
        try:
            with transaction.atomic():
                names = Alias.objects.in_namespace(owner).filter(slug=slug)
                latest = names.order_by("-version").first()
                if latest and latest.program_id == program.pk:
                    return latest, False
                alias = Alias.objects.create(
                    owner=owner,
                    slug=slug,
                    version=(latest.version + 1) if latest else 1,
                    program=program,
                    created_by=actor,
                )
                return alias, True
        except IntegrityError:
            # Someone added the same version at the same moment: take the next one.
            if attempt == ALIAS_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def tags_named(names):
    """The Tag rows for `names` (made when new): lowercased, deduplicated, at
    most MAX_TAGS. ValidationError for a name outside TAG_PATTERN."""
    clean = []
    for raw in names:
        tag = raw.strip().lower()
        if tag and not TAG_PATTERN.fullmatch(tag):
            raise ValidationError(
                f"{tag!r} is not a valid tag: use lowercase letters, digits and dashes."
            )
        if tag and tag not in clean:
            clean.append(tag)
    return [Tag.objects.get_or_create(name=tag)[0] for tag in clean[:MAX_TAGS]]


def program_update(
    *, program, actor, name=None, public=None, tags=None, slug=None
) -> tuple[Program, Alias | None]:
    """Retitle, retag, publish or name `program` (its author only), all or nothing.
    A public program stays public: its id is the shared compile cache for its
    spec, so hidden from others it would be the answer to their compiles all the
    same (ValidationError with code "stays_public"). `slug` names it `you/slug`
    (the PAW SDK's `paw rename`): a new name, or the next version of an existing
    one; earlier names and versions keep resolving, so a name is never taken away
    (an empty one, or one in another namespace, is refused with code
    "rename_refused"). Returns the program and the alias `slug` gave, if any."""
    if not actor.is_authenticated or program.owner_id != actor.pk:
        raise PermissionDenied("Only the program's author can change it.")
    if public is False and program.is_public:
        raise ValidationError(
            "A public program stays public: it is what everyone compiling this spec gets. "
            "Compile the spec again with public: false for a private program.",
            code="stays_public",
        )
    bare = _own_slug(slug, actor) if slug is not None else None
    alias = None
    with transaction.atomic():
        fields = ["updated_at"]
        if name is not None:
            program.name = name
            fields.append("name")
        if public is not None:
            program.is_public = public
            fields.append("is_public")
        program.save(update_fields=fields)
        if tags is not None:
            program.tags.set(tags_named(tags))
        if bare is not None:
            alias, _ = alias_point(user=actor, slug=bare, program=program)
    return program, alias


def _own_slug(slug, actor) -> str:
    """The bare slug of `slug` or `you/slug`, refused when empty or in another namespace."""
    namespace, _, bare = slug.strip().rpartition("/")
    if not bare:
        raise ValidationError(
            "A program's name cannot be removed: names are versioned and code may pin "
            "them. Give it another name instead.",
            code="rename_refused",
        )
    if namespace and namespace.lower() != actor.username.lower():
        raise ValidationError(
            f"You can only name programs in your own namespace ({actor.username}/…).",
            code="rename_refused",
        )
    return bare


def case_submit(
    *, program, author, input, expected, type, note="", caller: limits.Caller | None = None
) -> Case:
    """Record a case: how the program should answer `input`. Each case queues a
    check on the runtime, so with a `caller` (every front door passes one) the
    case quota is counted, and the unchecked cases of one author and of one
    program are bounded: limits.RateLimited when over."""
    if not author.is_authenticated:
        raise PermissionDenied("Sign in to add a case.")
    if not program.is_ready:
        raise ValidationError("Cases can be added once the program has compiled.")
    if caller is not None:
        limits.hit("case", caller)
        unchecked = Case.objects.filter(checked_at__isnull=True)
        for scope, over in (
            ("author", unchecked.filter(author=author)),
            ("program", unchecked.filter(program=program)),
        ):
            allowed = MAX_UNCHECKED_CASES[scope]
            if over.count() >= allowed:
                raise limits.RateLimited(
                    "unchecked_cases",
                    UNCHECKED_RETRY_AFTER,
                    f"{allowed} cases {'of yours' if scope == 'author' else 'of this program'} "
                    "are still waiting for their check; add more once they are checked.",
                    limit=allowed,
                    error="too_many_unchecked_cases",
                )
    case = Case(
        program=program, author=author, input=input, expected=expected, type=type, note=note
    )
    case.full_clean(exclude=["program", "author"])
    case.save()
    # The runtime app checks it (runtime.apps): it fills actual_output and passed.
    case_submitted.send(sender=Case, case=case)
    return case


def report_submit(*, program, reporter, reason, note="") -> Report:
    """Report a problem with `program` to the moderators. A second report from
    the same person while the first is open updates that one."""
    if not reporter.is_authenticated:
        raise PermissionDenied("Sign in to report a program.")
    report = Report(program=program, reporter=reporter, reason=reason, note=note)
    report.full_clean(exclude=["program", "reporter"], validate_constraints=False)
    with transaction.atomic():
        updated = Report.objects.open().filter(program=program, reporter=reporter)
        if updated.update(reason=reason, note=note):
            return updated.get()
        report.save()
    return report


# --- moderation: staff only, every action logged -------------------------------


def _require_staff(actor):
    if not (actor.is_authenticated and actor.is_staff and actor.is_active):
        raise PermissionDenied("Only moderators can do this.")


def _require_reason(reason):
    if not reason.strip():
        raise ValidationError({"reason": "Say why: the author and other moderators see it."})


def _log(*, actor, action, reason="", program=None, target_user=None, report=None):
    return ModerationAction.objects.create(
        actor=actor,
        action=action,
        reason=reason,
        program=program,
        target_user=target_user,
        report=report,
    )


def report_resolve(*, report, actor, resolution="") -> Report:
    _require_staff(actor)
    with transaction.atomic():
        if (
            not Report.objects.open()
            .filter(pk=report.pk)
            .update(
                status=Report.Status.RESOLVED,
                resolved_by=actor,
                resolution=resolution,
                resolved_at=timezone.now(),
            )
        ):
            raise ValidationError("This report was already resolved.")
        _log(
            actor=actor,
            action=ModerationAction.Action.RESOLVE_REPORT,
            reason=resolution,
            program=report.program,
            report=report,
        )
    report.refresh_from_db()
    return report


def program_hide(*, program, actor, reason) -> Program:
    """Take `program` out of the hub; its author still sees it, and why."""
    _require_staff(actor)
    _require_reason(reason)
    with transaction.atomic():
        program.is_hidden, program.hidden_reason = True, reason[:300]
        program.save(update_fields=["is_hidden", "hidden_reason", "updated_at"])
        _log(actor=actor, action=ModerationAction.Action.HIDE, reason=reason, program=program)
    return program


def program_unhide(*, program, actor, reason="") -> Program:
    _require_staff(actor)
    with transaction.atomic():
        program.is_hidden, program.hidden_reason = False, ""
        program.save(update_fields=["is_hidden", "hidden_reason", "updated_at"])
        _log(actor=actor, action=ModerationAction.Action.UNHIDE, reason=reason, program=program)
    return program


def user_ban(*, user, actor, reason) -> int:
    """Deactivate `user` (which signs them out) and hide their programs.
    Returns how many programs were hidden."""
    _require_staff(actor)
    _require_reason(reason)
    if user.pk == actor.pk or user.is_staff:
        raise PermissionDenied("Moderators cannot be banned here; use the admin.")
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        hidden = Program.objects.filter(owner=user, is_hidden=False).update(
            is_hidden=True,
            hidden_reason=f"Author banned: {reason}"[:300],
            updated_at=timezone.now(),
        )
        _log(
            actor=actor,
            action=ModerationAction.Action.BAN,
            reason=f"{reason} ({hidden} program{'s' if hidden != 1 else ''} hidden)",
            target_user=user,
        )
    gallery_changed()  # the programs were hidden in bulk, without signals
    return hidden


def user_unban(*, user, actor, reason="") -> None:
    """Reactivate `user`. Their programs stay hidden until unhidden one by one."""
    _require_staff(actor)
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])
        _log(actor=actor, action=ModerationAction.Action.UNBAN, reason=reason, target_user=user)


def program_publish(*, program, actor, slug, reason="") -> Alias:
    """Feature `program` in the official namespace under the bare name `slug`
    (a new version when the name already exists)."""
    _require_staff(actor)
    if not program.is_public or program.is_hidden:
        raise ValidationError("Only public, visible programs can be made official.")
    with transaction.atomic():
        alias, _ = _point(owner=None, slug=slug, program=program, actor=actor)
        _log(
            actor=actor,
            action=ModerationAction.Action.PUBLISH,
            reason=reason or f"as {alias.full_name}",
            program=program,
        )
    return alias


def program_count_download(*, program) -> None:
    Program.objects.filter(pk=program.pk).update(download_count=F("download_count") + 1)


def program_bundle_current(*, program) -> Program:
    """Make `program`'s stored bundle the current format (version 4: meta.json
    names the runtime, as the PAW SDK needs), rewriting an older one in place
    with its sha256 and size (so ETags name the bytes served). A bundle that is
    current, or that cannot be read, is left as it is. Idempotent: the rewrite is
    a function of the old bundle (fixed timestamps), so racing downloads write
    the same bytes. Returns the program as saved."""
    artifact = program.artifact("bundle")
    try:
        bundle = read_bundle(artifacts.artifact_local_path(artifact.path, sha256=artifact.sha256))
    except (OSError, BundleError):
        log.warning("stored bundle of %s is unreadable", program.pk, exc_info=True)
        return program
    if bundle.meta.version >= RUNTIME_VERSION:
        return program
    meta = upgrade_meta(
        bundle.meta,
        interpreter=manifest.INTERPRETER,
        runtime_id=manifest.RUNTIME_ID,
        manifest_version=manifest.MANIFEST_VERSION,
    )
    with tempfile.TemporaryDirectory() as scratch:
        adapter = Path(scratch) / "adapter.gguf"
        adapter.write_bytes(bundle.adapter)
        upgraded = Path(scratch) / "bundle.paw"
        write_bundle(
            upgraded,
            meta=meta,
            adapter_path=adapter,
            prompt_template=bundle.prompt_template,
            pseudo_program=bundle.pseudo_program,
        )
        digest = hashlib.sha256(upgraded.read_bytes()).hexdigest()
        size = upgraded.stat().st_size
        artifacts.artifact_replace(artifact.path, upgraded)
    Program.objects.filter(pk=program.pk).update(bundle_sha256=digest, bundle_size=size)
    program.bundle_sha256, program.bundle_size = digest, size
    log.info("upgraded the bundle of %s from version %s", program.pk, bundle.meta.version)
    return program
