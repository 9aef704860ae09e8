"""What every tool group shares: the role, the interview a candidate server is bound to, the
interviews service, the verification stages; and `add_tool`, the one place where anticipated
failures become ToolError and where a role's result model is chosen."""

import functools
import inspect
from dataclasses import dataclass, field
from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent

from bug_catalog.catalog import UnknownBug
from sandbox.workspace import WorkspaceError
from server.files import FileAccessError
from server.interviews import InterviewError, Interviews, bug_checks
from server.runs import short_run_stage
from server.text import render

Role = Literal["interviewer", "candidate"]

# failures a caller can act on: their message goes back to the model as a tool error
ANTICIPATED = (InterviewError, FileAccessError, WorkspaceError, UnknownBug)


@dataclass
class ServerContext:
    role: Role
    interviews: Interviews
    bound_interview: str | None = None   # a candidate server for one interview serves only that one
    # an unbound candidate server reaches only the interviews it started (None: every interview)
    started_here: set | None = None
    max_verify: int | None = None
    verify_stages: list = field(default_factory=lambda: [bug_checks, short_run_stage])

    @property
    def interviewer(self):
        return self.role == "interviewer"

    def interview_id(self, given):
        """The interview a call is about: the one given, or the one this server is bound to."""
        if self.bound_interview is not None:
            if given not in (None, self.bound_interview):
                raise ToolError(f"this server serves interview {self.bound_interview} only")
            return self._called_on(self.bound_interview)
        if given is None:
            raise ToolError("give interview_id (start_interview returns it; interview_status lists them)")
        if self.started_here is not None and given not in self.started_here:
            raise ToolError(f"interview {given} was not started by this server: a candidate server acts only on "
                            "the interviews it started (serve --role candidate --interview ID serves another one)")
        return self._called_on(given)

    def _called_on(self, interview_id):
        if not self.interviewer:  # a candidate's first call starts a clock that waits for it
            self.interviews.candidate_call(interview_id)
        return interview_id

    def visible(self):
        """The ids of the interviews this server may show, or None for every interview."""
        return {self.bound_interview} if self.bound_interview is not None else self.started_here


def add_tool(server, fn, result, *, name=None, description=None, annotations=None):
    """Register `fn` as a tool whose structured result is the model `result`.

    `fn` may return a richer model (the interviewer's); only the fields of `result` go over the
    wire, and the schema the client sees is `result`'s, so a candidate never even sees the names of
    interviewer-only fields. Anticipated failures become ToolError here, not in each tool.

    The result carries the model twice: as structured content (for programs; the SDK checks it
    against the output schema) and as text written for reading (server/text.py), which is all
    that most LLM clients show a model."""

    def convert(value):
        shown = result.model_validate(value.model_dump())
        return CallToolResult(content=[TextContent(type="text", text=render(shown))],
                              structured_content=shown.model_dump(mode="json", by_alias=True))

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            try:
                return convert(await fn(*args, **kwargs))
            except ANTICIPATED as error:
                raise ToolError(str(error)) from None
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return convert(fn(*args, **kwargs))
            except ANTICIPATED as error:
                raise ToolError(str(error)) from None

    returns = Annotated[CallToolResult, result]  # the SDK's spelling of "a result built here, schema of `result`"
    wrapper.__signature__ = inspect.signature(fn).replace(return_annotation=returns)
    wrapper.__annotations__ = {**fn.__annotations__, "return": returns}
    server.add_tool(wrapper, name=name or fn.__name__, description=description or inspect.getdoc(fn),
                    annotations=annotations)
    return wrapper
