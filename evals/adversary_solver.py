"""The adversary (evals/adversary_agent.py) inside Inspect: `-T agent=adversary`, and the
command line of its command-line twin (`bugdrill eval --agent adversary-shell`).

Its tool calls go through Inspect's execute_tools, as the reference agent's do, so the
transcript holds every call and every result it read; its per-attack records go into the
sample's store under "adversary" and into its final answer."""

from inspect_ai.model import ChatMessageAssistant, execute_tools
from inspect_ai.tool import ToolCall, mcp_connection

from bug_catalog.catalog import load_catalog
from evals.adversary_agent import ToolFailed, run_adversary
from evals.reference_agent import WHOLE_RESULTS, parse_result


def catalogue_cause_terms():
    """Every cause term of every record: the widest claim a candidate could stuff a diagnosis with
    (the catalogue is public; the answer for an episode is not)."""
    terms = [term for record in load_catalog().values() for group in record.cause_terms for term in group]
    return list(dict.fromkeys(terms))


async def run_adversary_solver(state, source):
    async with mcp_connection([source]):
        tools = await source.tools()
        calls = iter(range(1, 10**6))

        async def call(name, arguments):
            message = ChatMessageAssistant(content="", tool_calls=[
                ToolCall(id=f"call-{next(calls)}", function=name, arguments=arguments)])
            result = await execute_tools([*state.messages, message], tools, max_output=WHOLE_RESULTS)
            state.messages.extend([message, *result.messages])
            reply = result.messages[-1]
            if reply.error is not None:
                raise ToolFailed(reply.error.message)
            return parse_result(name, reply.text)

        answer, records = await run_adversary(call, catalogue_cause_terms())
    state.store.set("adversary", records)
    state.messages.append(ChatMessageAssistant(content=answer))
    state.output.completion = answer
    return state


def shell_command():
    from evals.adversary_shell import command

    return command(catalogue_cause_terms())
