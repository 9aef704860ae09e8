"""The catalogue: `list_bugs` for the interviewer and for an unbound candidate choosing a bug to
practise (the candidate sees no locations, explanations or hints), and the catalogue as resources
for the interviewer only.

A candidate bound to one interview gets no catalogue at all: its bug is one of the list, and the
list filtered by interview type is a menu of answers to try, narrowing the search without any
debugging."""

import json
from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import Field

from bug_catalog.catalog import UnknownBug, get_bug, load_catalog
from bug_catalog.schema import Category
from server import results
from server.context import add_tool
from server.practice import practice_order, tier


def entry(record):
    return results.BugEntry(
        id=record.id, title=record.title, category=record.category, priority=record.priority,
        difficulty=record.difficulty, slug=record.slug, tier=tier(record), file=record.file,
        function=record.function, observable=record.observable, scenario=record.scenario,
        interview_types=list(record.interview_types), variants=[v.name for v in record.variants])


def register(server, ctx):
    if ctx.bound_interview is not None:
        return

    def list_bugs(
        category: Annotated[Category | None, Field(description="only this category")] = None,
        priority: Annotated[int | None, Field(ge=1, le=3, description="1 must know, 2 should know, 3 good to know")] = None,
        difficulty: Annotated[Literal["easy", "medium", "hard"] | None, Field(description="only this difficulty")] = None,
        interview_type: Annotated[Literal["code_review", "production_debugging"] | None,
                                  Field(description="only bugs suited to this interview type")] = None,
    ) -> results.BugCatalog:
        """List the bug catalogue, in the practice guide's recommended order, with optional filters."""
        catalog = load_catalog()
        order = {bug_id: n for n, bug_id in enumerate(practice_order(catalog))}
        chosen = [r for r in sorted(catalog.values(), key=lambda r: order[r.id])
                  if (category is None or r.category == category) and (priority is None or r.priority == priority)
                  and (difficulty is None or r.difficulty == difficulty)
                  and (interview_type is None or interview_type in r.interview_types)]
        return results.BugCatalog(count=len(chosen), bugs=[entry(r) for r in chosen])

    add_tool(server, list_bugs, results.BugCatalog if ctx.interviewer else results.BugList,
             description=None if ctx.interviewer else
             "List the bug catalogue (id, title, category, priority, difficulty), with optional filters.")

    if not ctx.interviewer:
        return

    @server.resource("bugdrill://catalog", name="catalog", mime_type="application/json",
                     description="Every bug of the catalogue: id, title, category, priority, difficulty, file, "
                                 "function, variants (interviewer only)")
    def catalog_resource() -> str:
        return json.dumps([entry(r).model_dump() for r in sorted(load_catalog().values(), key=lambda r: r.id)],
                          indent=2)

    @server.resource("bugdrill://bugs/{id}", name="bug", mime_type="application/json",
                     description="One bug's full record by id or slug: symptom, hints, explanation, investigation, "
                                 "variants (interviewer only)")
    def bug_resource(id: str) -> str:  # noqa: A002 - the URI template's name
        try:
            record = get_bug(id)
        except UnknownBug as error:
            raise ResourceNotFoundError(str(error)) from None
        return json.dumps(record.model_dump(), indent=2)
