"""pawhub: read, vet and run PAW programs exactly as PAW Hub runs them.

A program is a ``.paw`` bundle: a LoRA adapter (GGUF) for the SmolLM2-135M
base, the prompt template it was trained in and the output constraint its
compiler read off the spec's examples. This package owns all of it, with no
Django, no PyTorch and no transformers, so the same code serves the hub's
runtime workers and anyone who takes a program home:

    import pawhub
    print(pawhub.load("program.paw").run("your input").output)

or from a shell: ``pawhub run program.paw "your input"``. From a hub
(``PAWHUB_URL``), by id or name, with a sha256-checked cache (``pawhub.hub``):

    classify = pawhub.function("alice/support-urgency")
    print(classify("Nobody can log in"))

With the official PAW SDK, the program's constraint as logits processors
(``pawhub.guided``) makes its local answers the hub's::

    fn = programasweights.function("alice/support-urgency")
    guided = pawhub.guided("alice/support-urgency")
    print(fn("Nobody can log in", logits_processor=guided("Nobody can log in")))
"""

__version__ = "0.1.0"


def load(path, **kwargs):
    """A ``pawhub.local.LocalProgram`` for the bundle at ``path`` (see there)."""
    # Imported here so that `import pawhub` (the web process does it) loads no llama.cpp.
    from pawhub.local import load

    return load(path, **kwargs)


def function(ref, **hub_options):
    """A hub program as a callable, run locally: see ``pawhub.hub.function``."""
    from pawhub.hub import function

    return function(ref, **hub_options)


def guided(ref, **options):
    """A hub program's output constraint as llama.cpp logits processors: see
    ``pawhub.hub.guided``."""
    from pawhub.hub import guided

    return guided(ref, **options)
