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
