"""Runs PAW programs: SmolLM2 base GGUF plus a program's LoRA adapter, via llama.cpp.

Importable without Django so the same code serves the web worker and anyone who
downloads a program to run it locally:

    import runtime
    print(runtime.load("program.paw").run("your input").output)

or from a shell: ``python -m runtime run program.paw "your input"``.
"""


def load(path, **kwargs):
    """A ``runtime.local.LocalProgram`` for the bundle at ``path`` (see there)."""
    # Imported here so that `import runtime` (Django does it for the app) loads no llama.cpp.
    from runtime.local import load

    return load(path, **kwargs)
