"""Drives the official PAW SDK (programasweights 0.4.14, unmodified) against a
hub; run by tests/sdk/test_clients.py with the SDK's own virtual environment's
Python (`.venv-sdk`), never the site's. Prints one JSON object on stdout's last line.

    python sdk_driver.py STEP '{"json": "arguments"}'

Configuration is the SDK's own: PAW_API_URL, PAW_API_KEY, PAW_CACHE_DIR.

AMX: on a CPU with Intel AMX, llama.cpp's AMX buffer type crashes on the first
evaluation (SIGILL/SIGSEGV; pawhub.model.extra_buffer_types_usable). The SDK
calls plain `Llama()`, so on such a host this driver -- and only on such a
host -- makes llama.cpp's default model parameters leave the extra buffer
types out before the SDK loads anything. That is the one change around the
SDK; every call below is the SDK as shipped. (pawhub is installed beside it, as
a user who wants the hub's answers locally installs it: only `step_guided` uses
it, through the SDK's own `logits_processor` argument.)
"""

import json
import sys
import time


def amx_safe_llama():
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    if b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info():
        return False
    defaults = bindings.llama_model_default_params

    def model_params():
        params = defaults()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = model_params
    return True


def step_compile(paw, args):
    started = time.monotonic()
    program = paw.compile(args["spec"], slug=args.get("slug"), name=args.get("name"))
    return {
        "id": program.id,
        "status": program.status,
        "slug": program.slug,
        "version": program.version,
        "version_action": program.version_action,
        "runtime_id": program.runtime_id,
        "runtime_manifest_version": program.runtime_manifest_version,
        "timings": program.timings,
        "error": program.error,
        "seconds": time.monotonic() - started,
    }


def step_async(paw, args):
    """precheck, compile_async, status, cancel (twice: the second is a 409)."""
    from programasweights.errors import APIError

    out = {"precheck_cached": paw.precheck_compile(args["cached_spec"])}
    out["cached_job"] = paw.compile_async(args["cached_spec"], compiler=args["compiler"])
    job = paw.compile_async(args["new_spec"], compiler=args["compiler"])
    out["new_job"] = job
    out["status"] = paw.get_compile_status(job["job_id"])
    out["cancel"] = paw.cancel_compile(job["job_id"])
    try:
        paw.cancel_compile(job["job_id"])
        out["second_cancel"] = None
    except APIError as exc:
        out["second_cancel"] = exc.response.status_code
    out["status_after"] = paw.get_compile_status(job["job_id"])
    return out


def step_meta(paw, args):
    from programasweights.client import PAWClient

    client = PAWClient()
    return {
        "compilers": paw.list_compilers(),
        "versions": paw.list_versions(args["slug"]),
        "mine": paw.list_programs(),
        "info": client.get_program_meta(args["id"]),
    }


def step_run(paw, args):
    """Load by each reference, local and remote; answer every input."""
    out = {}
    for ref in args["refs"]:
        started = time.monotonic()
        fn = paw.function(ref, remote=args.get("remote", False))
        loaded = time.monotonic() - started
        answers, seconds = [], []
        for text in args["inputs"]:
            t = time.monotonic()
            answers.append(fn(text))
            seconds.append(time.monotonic() - t)
        out[ref] = {"answers": answers, "load_s": loaded, "call_s": seconds}
    return out


def step_guided(paw, args):
    """A local function's answers as the SDK decodes them (freely), and with the
    program's output constraint from pawhub as the SDK's `logits_processor`."""
    import pawhub

    fn = paw.function(args["ref"])
    guided = pawhub.guided(args["ref"])
    free = [fn(text) for text in args["inputs"]] if args.get("free", True) else None
    return {
        "free": free,
        "guided": [fn(text, logits_processor=guided(text)) for text in args["inputs"]],
    }


def step_unknown(paw, args):
    started = time.monotonic()
    try:
        paw.function(args["id"])
        error = None
    except Exception as exc:  # what a user sees
        error = f"{type(exc).__name__}: {exc}"
    return {"error": error, "seconds": time.monotonic() - started}


def step_prepare(paw, args):
    meta = paw.prepare_program(args["ref"])
    return {"offline_ready": meta["offline_ready"], "ready": paw.is_offline_ready(args["ref"])}


def step_offline(paw, args):
    """With PAW_OFFLINE=1 and no hub reachable: is_offline_ready and a local run."""
    fn = paw.function(args["ref"], offline=True)
    return {
        "ready": paw.is_offline_ready(args["ref"]),
        "answers": [fn(text) for text in args["inputs"]],
    }


STEPS = {name[5:]: f for name, f in globals().items() if name.startswith("step_")}


def main():
    step, args = sys.argv[1], json.loads(sys.argv[2])
    amx = amx_safe_llama() if step in ("run", "prepare", "offline", "guided") else False
    import programasweights as paw

    result = STEPS[step](paw, args)
    result = result if isinstance(result, dict) else {"result": result}
    print(json.dumps(result | {"amx_workaround": amx}, default=str))


if __name__ == "__main__":
    main()
