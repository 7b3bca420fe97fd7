"""The one prompt format shared by training and inference.

A program's prompt is its pseudo-program plus the user's input, placed as the
user turn of SmolLM2's ChatML chat template. The ChatML wrapping is a fixed
string written here on purpose: a GGUF carries its own Jinja chat template, and
rendering an untrusted template is code execution we never want.

Both sides tokenize a rendered prompt in three pieces (see ``split``): the text
before the input and the text after it may contain ChatML special tokens, while
the input itself is tokenized as plain text, so an input that contains
``<|im_end|>`` cannot end the user turn early.

Formats. A compiler snapshot pins the format its programs are trained and run
with (a program's bundle carries its whole template):

1. the input closed by ``\n[END_INPUT]`` before the end of the turn;
2. the end of the turn right after the input. The closing tag said nothing the
   end of turn does not, and its 6 tokens were a quarter of the prompt a warm
   call evaluates (the input and the template's tail; the head is cached).
"""

INPUT_PLACEHOLDER = "{INPUT_PLACEHOLDER}"

# SmolLM2-Instruct's own template inserts this system turn when none is given;
# keeping it means the base model sees exactly the context it was tuned on.
SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

END_OF_TURN = "<|im_end|>"

_HEAD = f"<|im_start|>system\n{SYSTEM_PROMPT}{END_OF_TURN}\n<|im_start|>user\n"
_TAIL = f"{END_OF_TURN}\n<|im_start|>assistant\n"


PROMPT_FORMATS = (1, 2)
LATEST_PROMPT_FORMAT = 2


class PromptError(ValueError):
    """A pseudo-program or template that does not fit the prompt format."""


def prompt_template(pseudo_program: str, prompt_format: int = LATEST_PROMPT_FORMAT) -> str:
    """The full prompt for ``pseudo_program`` with one ``{INPUT_PLACEHOLDER}``, in
    ``prompt_format`` (see the module's docstring)."""
    if prompt_format not in PROMPT_FORMATS:
        raise PromptError(f"unknown prompt format {prompt_format!r}")
    if INPUT_PLACEHOLDER in pseudo_program:
        raise PromptError(f"the pseudo-program must not contain {INPUT_PLACEHOLDER}")
    user_turn = (
        f"[PSEUDO_PROGRAM]\n{pseudo_program.strip()}\n[END_PSEUDO_PROGRAM]\n\n"
        f"[INPUT]\n{INPUT_PLACEHOLDER}"
    )
    if prompt_format == 1:
        user_turn += "\n[END_INPUT]"
    return chat_template(user_turn)


def chat_template(user_turn: str) -> str:
    """``user_turn`` as the user turn of the chat, after the fixed system turn (the
    compile engines draft pseudo-programs with it)."""
    return f"{_HEAD}{user_turn}{_TAIL}"


def split(template: str) -> tuple[str, str]:
    """The text before and after the placeholder; refuses a template without exactly one."""
    count = template.count(INPUT_PLACEHOLDER)
    if count != 1:
        raise PromptError(f"a prompt template needs exactly one {INPUT_PLACEHOLDER}, found {count}")
    head, tail = template.split(INPUT_PLACEHOLDER)
    return head, tail


def render(template: str, input_text: str) -> str:
    """The prompt as text, for display and logs; inference tokenizes ``split`` pieces."""
    head, tail = split(template)
    return f"{head}{input_text}{tail}"
