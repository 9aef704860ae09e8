"""The workspace, for clients without file access of their own: list_files, read_file, search_code
and edit_file, all confined to the interview's workspace (see server/files.py)."""

from typing import Annotated

from pydantic import Field

from server import files, results
from server.context import add_tool
from server.files import FileAccessError
from server.snippet import number_lines
from server.tools.common import InterviewIdParam, clock

PathParam = Annotated[str, Field(min_length=1, max_length=1000,
                                 description="relative to the workspace root, e.g. scripts/base_train.py")]
DIFF_SHOWN, DIFF_KEPT = 4000, 20000


def register(server, ctx):
    service = ctx.interviews

    def workspace_of(interview_id):
        return service.require_open(ctx.interview_id(interview_id))

    def list_files(
        interview_id: InterviewIdParam = None,
        path: Annotated[str, Field(min_length=1, max_length=1000, description="a folder of the workspace")] = ".",
    ) -> results.FileList:
        """List the workspace's files (under a folder), sorted; .git and caches left out."""
        interview = workspace_of(interview_id)
        listed, truncated = files.list_files(interview.workspace, path)
        return results.FileList(path=path, files=listed, truncated=truncated)

    add_tool(server, list_files, results.FileList)

    def read_file(
        path: PathParam,
        interview_id: InterviewIdParam = None,
        start_line: Annotated[int | None, Field(ge=1, le=10_000_000, description="first line (1-based)")] = None,
        end_line: Annotated[int | None, Field(ge=1, le=10_000_000, description="last line, inclusive")] = None,
    ) -> results.FileExcerpt:
        """Read a text file of the workspace, or a range of its lines, numbered (at most 400 lines a call)."""
        interview = workspace_of(interview_id)
        shown, lines, first, total, truncated = files.read(interview.workspace, path, start_line, end_line)
        service.record(interview.id, "view", {"view": "file", "path": shown, "first": first,
                                              "last": first + len(lines) - 1})
        return results.FileExcerpt(path=shown, first_line=first, last_line=first + len(lines) - 1,
                                   total_lines=total, truncated=truncated, code=number_lines(lines, first))

    add_tool(server, read_file, results.FileExcerpt)

    def search_code(
        pattern: Annotated[str, Field(min_length=1, max_length=500, description="text or regular expression")],
        interview_id: InterviewIdParam = None,
        regex: Annotated[bool, Field(description=(
            "treat pattern as a regular expression (RE2: Python syntax without backreferences or lookaround)"))
        ] = False,
        path: Annotated[str, Field(min_length=1, max_length=1000, description="a file or folder to search")] = ".",
        case_sensitive: bool = True,
        max_results: Annotated[int, Field(ge=1, le=500)] = 100,
    ) -> results.SearchResult:
        """Search the workspace's text files line by line; matches with path and line number. Regular
        expressions run on RE2, in time linear in the text; a search that runs too long gives up and says so."""
        interview = workspace_of(interview_id)
        found, truncated, searched = files.search(interview.workspace, pattern, regex, path, case_sensitive,
                                                  max_results)
        service.record(interview.id, "view", {"view": "search", "pattern": pattern, "regex": regex, "path": path})
        return results.SearchResult(pattern=pattern, count=len(found), truncated=truncated, files_searched=searched,
                                    matches=[results.SearchMatch(path=p, line=n, text=t) for p, n, t in found])

    add_tool(server, search_code, results.SearchResult)

    def edit_file(
        path: PathParam,
        interview_id: InterviewIdParam = None,
        old_text: Annotated[str | None, Field(max_length=1_000_000, description=(
            "exact text to replace; it must occur exactly once in the file"))] = None,
        new_text: Annotated[str | None, Field(max_length=1_000_000, description="replacement for old_text")] = None,
        content: Annotated[str | None, Field(max_length=1_000_000, description=(
            "the whole new file (instead of old_text/new_text); creates the file if needed"))] = None,
    ) -> results.EditResult:
        """Edit a workspace file: replace old_text (which must match exactly once) with new_text, or
        write the whole file with content. Returns the diff of the edit."""
        interview_id = ctx.interview_id(interview_id)
        if content is not None and (old_text is not None or new_text is not None):
            raise FileAccessError("give either content, or old_text and new_text, not both")
        if content is None and (old_text is None or new_text is None):
            raise FileAccessError("give old_text and new_text (replace once), or content (write the whole file)")
        with service.lock(interview_id):
            interview = service.require_open(interview_id)
            if content is None:
                shown, diff = files.replace(interview.workspace, path, old_text, new_text)
                created = False
            else:
                shown, diff, created = files.write(interview.workspace, path, content)
            service.record(interview.id, "edit", {"path": shown, "created": created, "diff": diff[:DIFF_KEPT]})
        return results.EditResult(path=shown, created=created, diff=diff[:DIFF_SHOWN], clock=clock(interview))

    add_tool(server, edit_file, results.EditResult)
