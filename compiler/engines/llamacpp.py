"""The CPU engine: the runtime's shared llama.cpp interpreter, on the adapter GGUF itself."""

from pawhub.interpreter import shared_interpreter

from . import Completion, Engine, Request


class LlamaCppEngine(Engine):
    name = "llama.cpp"

    def generate(self, requests: list[Request]) -> list[Completion]:
        # One Llama context serves one call at a time: the batch runs in order.
        run = shared_interpreter().run
        completions = []
        for request in requests:
            result = run(
                request.template,
                request.input,
                adapter=request.adapter,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                constraint=request.constraint,
            )
            completions.append(
                Completion(
                    result.output,
                    truncated=result.tokens_generated >= request.max_tokens,
                    tokens=result.tokens_generated,
                )
            )
        return completions
