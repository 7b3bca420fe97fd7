"""What one program call is: its bounds, its result and its errors.

Kept apart from the interpreter so the web process (form, API schema, the
Celery caller) can check a request and read an answer without loading llama.cpp.
"""

import dataclasses

MAX_TOKENS_LIMIT = 512
DEFAULT_MAX_TOKENS = 64
MAX_INPUT_CHARS = 8000
MAX_TEMPERATURE = 2.0


class RunLimitError(ValueError):
    """A request outside the interpreter's bounds (input too long, too many tokens)."""


class RunTimeout(RuntimeError):
    """A call ran past its time limit and was stopped."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    output: str
    tokens_generated: int
    latency_ms: float


def check_request(input_text: str, *, max_tokens: int, temperature: float = 0.0) -> None:
    """The bounds of a call, checked the same way by the web form, the API and the interpreter.

    (Whether the prompt fits the model's context is only known once it is
    tokenized; the interpreter checks that and raises the same error.)"""
    if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise RunLimitError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}")
    if len(input_text) > MAX_INPUT_CHARS:
        raise RunLimitError(f"the input is longer than {MAX_INPUT_CHARS} characters")
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise RunLimitError(f"temperature must be between 0 and {MAX_TEMPERATURE:g}")
