"""How many CPU cores this process may use.

Apart from the interpreter so that code which never loads llama.cpp (training
in the compile worker, the vLLM engine) can ask too.
"""

import os


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
