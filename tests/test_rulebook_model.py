"""`--model bugdrill/rulebook`: the reference agent played as a model. Its replies to a
conversation it did not make, to a truncated tool result and to a wrong name are clear errors;
the whole react path runs in tests/test_eval.py."""

import json

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.model import (ChatMessageAssistant, ChatMessageTool, ChatMessageUser, GenerateConfig,  # noqa: E402
                              get_model)
from inspect_ai.tool import ToolCall, ToolInfo  # noqa: E402

import bugdrill._registry  # noqa: E402,F401  (registers the model API, as Inspect's entry point does)
from evals.rulebook_model import ConversationDiverged  # noqa: E402
from evals.statement import statement  # noqa: E402

pytestmark = pytest.mark.anyio

TOOLS = [ToolInfo(name=name, description=name) for name in
         ("run_training", "get_view", "read_file", "list_files", "search_code", "get_snippet", "submit_diagnosis",
          "edit_file", "verify_fix", "submit")]


def generate(messages):
    model = get_model("bugdrill/rulebook", memoize=False)
    return model.api.generate(messages, TOOLS, "auto", GenerateConfig())


async def test_a_production_episode_opens_with_a_run():
    output = await generate([ChatMessageUser(content=statement("production_debugging"))])
    (call,) = output.message.tool_calls
    assert call.function == "run_training" and output.usage.total_tokens > 0


async def test_a_code_review_opens_with_the_snippet():
    output = await generate([ChatMessageUser(content=statement("code_review"))])
    assert [c.function for c in output.message.tool_calls] == ["get_snippet"]


async def test_a_conversation_it_did_not_make_is_refused():
    with pytest.raises(ConversationDiverged, match="task statement"):
        await generate([ChatMessageUser(content="Write a poem.")])
    first = await generate([ChatMessageUser(content=statement("code_review"))])
    other = ChatMessageAssistant(content="", tool_calls=[ToolCall(id="x", function="list_files", arguments={})])
    with pytest.raises(ConversationDiverged, match="called list_files, the rule book calls get_snippet"):
        await generate([ChatMessageUser(content=statement("code_review")), other,
                        ChatMessageTool(content="[]", tool_call_id="x", function="list_files")])
    assert first.message.tool_calls[0].function == "get_snippet"


async def test_a_truncated_result_asks_for_whole_output():
    first = await generate([ChatMessageUser(content=statement("code_review"))])
    (call,) = first.message.tool_calls
    cut = ("The output of your call to get_snippet was too long to be displayed.\nHere is a truncated version:\n"
           "<START_TOOL_OUTPUT>\n" + json.dumps({"lines": "1 | x"})[:5] + "\n<END_TOOL_OUTPUT>")
    with pytest.raises(ConversationDiverged, match="--max-tool-output"):
        await generate([ChatMessageUser(content=statement("code_review")), first.message,
                        ChatMessageTool(content=cut, tool_call_id=call.id, function=call.function)])


def test_an_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="bugdrill models: rulebook"):
        get_model("bugdrill/gpt-7", memoize=False)
