"""bugdrill's MCP server: ML-debugging interviews on a codebase with a silently injected bug.

Design, in the manner of the reference servers (mcp-server-git, mcp-server-time):

* One MCPServer per role. `interviewer` has everything; `candidate` (what an agent under evaluation
  gets) can start, read, search, edit, verify, diagnose and ask for hints, but has no reveal tool, no
  resources, no interviewer prompts, and result models without interviewer fields: what it cannot
  see is not hidden, it does not exist. A candidate server started for one interview (`--interview
  ID`) serves only that interview, cannot start another and has no catalogue (`list_bugs` would be a
  menu of answers); an unbound candidate server (self-practice) lists the catalogue without
  locations and reaches only the interviews it started itself.
* Calls are checked before they run: an argument a tool does not declare is refused (pydantic would
  drop it, and a misspelt `bugs=` would silently become a random bug), and a prompt the server does
  not have is an invalid-params error, not an internal one.
* Tools are thin: each group (server/tools/*.py) has `register(server, ctx)` and calls into
  server/interviews.py, which knows nothing of MCP. Tool parameters are annotated with pydantic
  `Field` constraints, so bad types and ranges are refused by the SDK before a tool runs; results
  are pydantic models, sent as structured content.
* Errors: a failure the caller can act on (unknown bug or interview, a path outside the workspace,
  an ended interview, the verification limit) is raised as InterviewError, FileAccessError,
  WorkspaceError or UnknownBug and turned into ToolError in one place (context.add_tool): the client
  gets an `is_error` result with a message that says what to do. Anything else is a bug of ours: the
  SDK answers "Error executing tool X" and logs the traceback (to stderr; stdout is the protocol's).
* State: SQLite in the state directory (server/store.py), written before a tool returns, so a server
  killed mid-interview and started again continues. Calls on one interview are serialised.
* Seams: verify_fix runs ctx.verify_stages (append a short run against baseline there); training and
  telemetry tools are one more module in server/tools with a `register` function (see GROUPS).
"""

import logging
from importlib.metadata import PackageNotFoundError, version

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import ConfigDict, model_validator

from sandbox.training import stop_orphans
from server import prompts
from server.context import ServerContext
from server.interviews import Interviews
from server.store import Store
from server.tools import GROUPS

INSTRUCTIONS = {
    "interviewer": (
        "bugdrill runs ML-debugging mock interviews on a GPT training codebase with a silently injected bug. "
        "Use the prompts code_review_interview or production_debugging_interview for the interviewer's script, "
        "self_practice for the practice guide's Method 1. start_interview makes a blind workspace; never tell the "
        "candidate which bug it is until the interview is over (reveal)."),
    "candidate": (
        "You are the candidate in an ML-debugging interview: a GPT training codebase has a bug in it. Read and "
        "search the workspace, edit it, verify_fix to check a fix, submit_diagnosis with file, line and what is "
        "wrong, get_hint when stuck. interview_status shows the clock."),
}


class BugdrillServer(MCPServer):
    async def get_prompt(self, name, arguments=None, context=None):
        """The SDK answers an unknown prompt or argument with an internal error (and logs a traceback):
        both are the caller's mistake, so they are refused as invalid params saying what there is."""
        prompts = {prompt.name: prompt for prompt in await self.list_prompts()}
        if name not in prompts:
            raise MCPError(INVALID_PARAMS, f"unknown prompt {name!r}: this server's prompts are "
                                           f"{', '.join(sorted(prompts)) or 'none'}")
        declared = [argument.name for argument in prompts[name].arguments or []]
        undeclared = sorted(set(arguments or {}) - set(declared))
        if undeclared:
            raise MCPError(INVALID_PARAMS, f"prompt {name!r} has no argument {', '.join(undeclared)}; it takes "
                                           f"{', '.join(declared) or 'none'}")
        return await super().get_prompt(name, arguments, context)


def refuse_unknown_arguments(tool):
    """Make a registered tool refuse undeclared arguments, naming the ones it takes; its input schema
    says so too (additionalProperties: false)."""
    model = tool.fn_metadata.arg_model
    declared = [field.alias or name for name, field in model.model_fields.items()]

    def known_only(cls, data):
        unknown = sorted(set(data) - set(declared)) if isinstance(data, dict) else []
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(unknown)}: {tool.name} takes "
                             f"{', '.join(declared) if declared else 'no arguments'}")
        return data

    strict = type(model.__name__, (model,), {
        "__module__": model.__module__, "model_config": ConfigDict(extra="forbid"),
        "known_only": model_validator(mode="before")(classmethod(known_only))})
    tool.fn_metadata.arg_model = strict
    tool.parameters = strict.model_json_schema(by_alias=True)


def package_version():
    """bugdrill's installed version, for serverInfo.version; a source tree that was never installed
    has none to give."""
    try:
        return version("bugdrill")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_server(role="interviewer", interview_id=None, workspaces_root=None, max_verify=None, store=None):
    """An MCPServer for one role over the state directory ($BUGDRILL_STATE_DIR or the user's data dir).

    interview_id binds a candidate server to one interview (without it, a candidate server reaches only
    the interviews it starts itself, kept in memory); workspaces_root is where new workspaces go
    (default: <state dir>/workspaces); max_verify limits verify_fix calls per interview."""
    if role not in INSTRUCTIONS:
        raise ValueError(f"role must be interviewer or candidate, not {role!r}")
    interviews = Interviews(store or Store(), workspaces_root)
    stop_orphans()  # runs and baselines of a server that died (kill -9) would otherwise run on unowned
    if interview_id is not None:
        interviews.bind_candidate(interview_id)  # an unknown id fails here; a default clock waits for the candidate
    unbound_candidate = role == "candidate" and interview_id is None
    ctx = ServerContext(role=role, interviews=interviews, bound_interview=interview_id, max_verify=max_verify,
                        started_here=set() if unbound_candidate else None)
    server = BugdrillServer("bugdrill", version=package_version(), instructions=INSTRUCTIONS[role], log_level="WARNING")
    for group in GROUPS:
        group.register(server, ctx)
    for tool in server._tool_manager.list_tools():  # the SDK has no public way to reach a registered tool
        refuse_unknown_arguments(tool)
    prompts.register(server, ctx)
    server.bugdrill = ctx  # the seam for tools added after build (tests and the training tools reach it here)
    logging.getLogger(__name__).info("bugdrill %s server ready", role)
    return server
