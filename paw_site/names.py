"""Names the site's own URLs use: no user and no program slug may take them,
or `/<user>/<slug>/` and `/<slug>/` would shadow (or be shadowed by) real pages."""

RESERVED_NAMES = frozenset(
    """
    about accounts admin api app auth compile dashboard docs download downloads
    explore favicon feed help hub login logout me media moderation new official
    p paw programs r register resolve root search settings signin signout signup
    static staff support system u user users versions www
    """.split()
)
