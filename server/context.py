"""What every tool group shares: the role, the interview a candidate server is bound to, the
interviews service, the verification stages; and `add_tool`, the one place where anticipated
failures become ToolError and where a role's result model is chosen."""

import functools
import inspect
from dataclasses import dataclass, field
from typing import Literal

from mcp.server.mcpserver.exceptions import ToolError

from bug_catalog.catalog import UnknownBug
from sandbox.workspace import WorkspaceError
from server.files import FileAccessError
from server.interviews import InterviewError, Interviews, bug_checks
from server.runs import short_run_stage

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
            return self.bound_interview
        if given is None:
            raise ToolError("give interview_id (start_interview returns it; interview_status lists them)")
        if self.started_here is not None and given not in self.started_here:
            raise ToolError(f"interview {given} was not started by this server: a candidate server acts only on "
                            "the interviews it started (serve --role candidate --interview ID serves another one)")
        return given

    def visible(self):
        """The ids of the interviews this server may show, or None for every interview."""
        return {self.bound_interview} if self.bound_interview is not None else self.started_here


def add_tool(server, fn, result, *, name=None, description=None, annotations=None):
    """Register `fn` as a tool whose structured result is the model `result`.

    `fn` may return a richer model (the interviewer's); only the fields of `result` go over the
    wire, and the schema the client sees is `result`'s, so a candidate never even sees the names of
    interviewer-only fields. Anticipated failures become ToolError here, not in each tool."""

    def convert(value):
        return result.model_validate(value.model_dump())

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

    wrapper.__signature__ = inspect.signature(fn).replace(return_annotation=result)
    wrapper.__annotations__ = {**fn.__annotations__, "return": result}
    server.add_tool(wrapper, name=name or fn.__name__, description=description or inspect.getdoc(fn),
                    annotations=annotations)
    return wrapper
