"""Keep each program's stored search document current on PostgreSQL, and
the cached gallery pages fresh.

Signals, because programs are created and tagged by the compiler app and
edited in the admin; bulk writes (seed_programs) call
Program.objects.refresh_search_vector() themselves. The search document is
PostgreSQL's only; on SQLite refreshing it is a no-op.
"""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from .gallery import gallery_changed
from .models import Alias, Program

SEARCHED_FIELDS = {"name", "spec"}


@receiver(post_save, sender=Program)
def program_saved(sender, instance, created, update_fields, **kwargs):
    if created or update_fields is None or SEARCHED_FIELDS & set(update_fields):
        Program.objects.filter(pk=instance.pk).refresh_search_vector()
    gallery_changed()


@receiver(m2m_changed, sender=Program.tags.through)
def program_tags_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if reverse:  # tag.programs.add(...); after a reverse clear pk_set is None (rare: skipped)
        programs = Program.objects.filter(pk__in=pk_set or ())
    else:
        programs = Program.objects.filter(pk=instance.pk)
    programs.refresh_search_vector()
    gallery_changed()


@receiver(post_save, sender=Alias)
@receiver(post_delete, sender=Alias)
def alias_changed(sender, instance, **kwargs):
    Program.objects.filter(pk=instance.program_id).refresh_search_vector()
    gallery_changed()
