"""The reference agent as a model: `--model bugdrill/rulebook` under the `react` agent.

The react path is the one a model under test takes: Inspect's react loop, the candidate-role
MCP server as its tools, react's submit tool to finish. Running it needs a model, and every
real one needs the network; this one needs none. Each turn Inspect hands it the whole
conversation; it replays the reference agent (evals/reference_agent.py) from the start against
the tool results already there and answers with the agent's next tool call, or, once the agent
has concluded, with a call to submit carrying the agent's final text. It keeps nothing between
turns, so one instance serves concurrent samples, and on the same episode it makes the same
calls, and earns the same verdict, as `-T agent=reference`.

Its token figures are estimates (characters / 4): there is no tokenizer behind it, and
Inspect's default estimate would download one.
"""

import json

from inspect_ai.model import (ChatMessageAssistant, ChatMessageTool, ChatMessageUser, GenerateConfig, ModelAPI,
                              ModelOutput, ModelUsage, modelapi)
from inspect_ai.tool import ToolCall

from evals.reference_agent import WHOLE_RESULTS, ToolFailed, parse_result, run_reference_agent
from evals.statement import APPROACH

MODEL_NAMES = ("rulebook",)
TRUNCATED = "was too long to be displayed"  # Inspect's notice on a truncated tool result


class _NextCall(Exception):
    """Raised out of the replay when the agent asks for a call the conversation does not hold yet."""

    def __init__(self, name, arguments):
        super().__init__(name)
        self.name, self.arguments = name, arguments


class ConversationDiverged(RuntimeError):
    """The conversation's tool calls are not the ones the rule book makes: not this model's turns."""


@modelapi(name="bugdrill")
class RulebookModel(ModelAPI):
    def __init__(self, model_name, base_url=None, api_key=None, config=GenerateConfig(), **model_args):
        if model_name not in MODEL_NAMES:
            raise ValueError(f"bugdrill models: {', '.join(MODEL_NAMES)} (not {model_name!r})")
        super().__init__(model_name, base_url, api_key, [], config)

    async def generate(self, input, tools, tool_choice, config):
        offered = {tool.name for tool in tools}
        try:
            answer = await run_reference_agent(_replay(_calls_made(input)), _kind(input))
            call = ToolCall(id=f"call-{_turn(input)}", function="submit", arguments={"answer": answer})
        except _NextCall as wanted:
            call = ToolCall(id=f"call-{_turn(input)}", function=wanted.name, arguments=wanted.arguments)
        if call.function not in offered:
            raise ConversationDiverged(f"the rule book calls {call.function!r}, which the agent was not given")
        message = ChatMessageAssistant(content="", tool_calls=[call], model=self.model_name, source="generate")
        output = ModelOutput.from_message(message, stop_reason="tool_calls")
        output.usage = self._usage(input, call)
        return output

    async def count_text_tokens(self, text):
        return _estimate(text)

    def _usage(self, input, call):
        read = sum(_estimate(message.text) for message in input)
        written = _estimate(json.dumps(call.arguments))
        return ModelUsage(input_tokens=read, output_tokens=written, total_tokens=read + written)


def _estimate(text):
    return max(1, len(text) // 4)


def _kind(input):
    """The interview kind, read from the task statement (evals/statement.py) as a model would."""
    task = next(m.text for m in input if isinstance(m, ChatMessageUser))
    kinds = [kind for kind, approach in APPROACH.items() if approach in task]
    if len(kinds) != 1:
        raise ConversationDiverged("the first user message is not a bugdrill task statement")
    return kinds[0]


def _turn(input):
    return 1 + sum(isinstance(m, ChatMessageAssistant) for m in input)


def _calls_made(input):
    """(function, arguments, reply) for every tool call in the conversation, in order."""
    replies = {m.tool_call_id: m for m in input if isinstance(m, ChatMessageTool)}
    return [(call.function, call.arguments, replies.get(call.id))
            for m in input if isinstance(m, ChatMessageAssistant) for call in m.tool_calls or []]


def _replay(made):
    pending = iter(made)

    async def call(name, arguments):
        recorded = next(pending, None)
        if recorded is None:
            raise _NextCall(name, arguments)
        function, recorded_arguments, reply = recorded
        if (function, recorded_arguments) != (name, arguments) or reply is None:
            raise ConversationDiverged(f"the conversation called {function}, the rule book calls {name} here")
        if reply.error is not None:
            raise ToolFailed(reply.error.message)
        if TRUNCATED in reply.text:
            raise ConversationDiverged(f"{name}'s result was truncated; the rule book reads results whole: "
                                       f"run with --max-tool-output {WHOLE_RESULTS}")
        return parse_result(name, reply.text)

    return call


