"""The shape of the code: the `pawhub` core (sdk/) imports no app and no Django,
and the apps import it, never the other way."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = ("paw_site", "accounts", "programs", "compiler", "runtime", "api")
# What a user's `pip install pawhub` must not need.
HEAVY = ("django", "torch", "transformers", "peft", "celery", "sentence_transformers")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_pawhub_imports_no_app_and_no_heavy_dependency():
    offenders = []
    for path in sorted((REPO / "sdk" / "pawhub").rglob("*.py")):
        for name in imported_modules(path):
            if name.split(".")[0] in APPS + HEAVY:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []


# The apps, lowest first: an app's modules import only apps below it (and
# pawhub). The catalogue of programs knows nothing of how they are compiled
# or run; the API translates requests for all of them. What needs to reach up
# goes through a signal or a hook the upper app installs (programs.events,
# programs.models.install_prompt_formats).
LAYERS = ("accounts", "programs", "compiler", "runtime", "api")
# Entry points sit on top of every app: the web views and URLs, the admin,
# management commands. They may import any app; no app module imports them.
ENTRY_POINTS = ("views.py", "urls.py", "admin.py")


def _is_entry_point(path: Path) -> bool:
    return path.name in ENTRY_POINTS or "management" in path.parts or "migrations" in path.parts


def test_apps_import_only_the_apps_below_them():
    offenders = []
    for level, app in enumerate(LAYERS):
        for path in sorted((REPO / app).rglob("*.py")):
            if _is_entry_point(path.relative_to(REPO)):
                continue
            for name in imported_modules(path):
                top = name.split(".")[0]
                if top in LAYERS and LAYERS.index(top) > level:
                    offenders.append(f"{path.relative_to(REPO)} imports {name} (above {app})")
                if top in LAYERS and name.rsplit(".", 1)[-1] in ("views", "urls", "admin"):
                    offenders.append(f"{path.relative_to(REPO)} imports the entry point {name}")
    assert offenders == []
