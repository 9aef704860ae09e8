"""Progress, as the practice guide tracks it: get_progress (status per bug, tiers, practice order,
the next bug to practise, notes) and record_note (symptoms observed, key learning).

A candidate's get_progress is scoped, not dropped: it is where its own notes come back, and it shows
only the interviews the server serves it (the bound one, or those an unbound candidate server
started), with their notes; never another interview, the catalogue's statuses or a bug's identity."""

from typing import Annotated

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from bug_catalog.catalog import load_catalog
from server import results
from server.context import add_tool
from server.practice import next_bug, practice_order, tier
from server.store import STATUSES
from server.tools.common import InterviewIdParam, summary

NoteText = Annotated[str, Field(max_length=4000)]


def register(server, ctx):
    service = ctx.interviews

    def visible():
        return service.all(ctx.visible())

    def note_entries(interviews):
        return [results.NoteEntry(time=e["time"], interview_id=i.id, symptoms=e["payload"]["symptoms"],
                                  key_learning=e["payload"]["key_learning"])
                for i in interviews for e in service.store.events(i.id, "note")]

    def get_progress() -> results.Progress:
        """Practice progress: your interviews and notes; for the interviewer also the status of every bug
        (not started, attempted, found, fixed) in practice order with tier, attempts, best time to find
        and notes, counts per status, and the next bug to practise."""
        interviews = visible()
        base = {"interviews": [summary(ctx, i) for i in interviews], "notes": note_entries(interviews)}
        if not ctx.interviewer:
            return results.CandidateProgress(**base)
        catalog = load_catalog()
        progress = service.store.progress()
        bugs = []
        for bug_id in practice_order(catalog):
            record, row = catalog[bug_id], progress.get(bug_id, {})
            bugs.append(results.BugProgress(
                id=bug_id, title=record.title, tier=tier(record), priority=record.priority,
                difficulty=record.difficulty, status=row.get("status", "not_started"), attempts=row.get("attempts", 0),
                best_time_s=row.get("best_time_s"), notes=[results.NoteEntry(**n) for n in row.get("notes", [])]))
        suggestion = next_bug(catalog, progress)
        return results.Progress(
            **base, bugs=bugs, counts={s: sum(b.status == s for b in bugs) for s in STATUSES},
            next_bug=results.NextBug(id=suggestion[0], title=catalog[suggestion[0]].title, why=suggestion[1])
            if suggestion else None)

    add_tool(server, get_progress, results.Progress if ctx.interviewer else results.CandidateProgress,
             description=None if ctx.interviewer else
             "Your progress: the interviews this server serves you (the one it is bound to, or those you started "
             "on it) with their state and clock, and your notes on them; nothing of any other interview.")

    if ctx.interviewer:
        def record_note(
            symptoms: NoteText = "",
            key_learning: NoteText = "",
            interview_id: InterviewIdParam = None,
            bug: Annotated[int | Annotated[str, Field(max_length=64)] | None,
                           Field(description="a bug id or slug, to note against a bug rather than an interview")] = None,
        ) -> results.NoteSavedFull:
            """Record the guide's per-bug note (symptoms observed, key learning) against an interview's bug
            or a bug by id."""
            if not (symptoms.strip() or key_learning.strip()):
                raise ToolError("write symptoms and/or key_learning")
            if (interview_id is None) == (bug is None):
                raise ToolError("give interview_id or bug (one of them)")
            bug_ids = service.note(interview_id, None if bug is None else str(bug), symptoms, key_learning)
            on_record = sum(len(service.store.progress().get(i, {}).get("notes", [])) for i in bug_ids)
            return results.NoteSavedFull(saved=True, interview_id=interview_id, notes_on_record=on_record,
                                         bug_ids=bug_ids)

        add_tool(server, record_note, results.NoteSavedFull)
    else:
        def record_note(
            symptoms: NoteText = "",
            key_learning: NoteText = "",
            interview_id: InterviewIdParam = None,
        ) -> results.NoteSaved:
            """Record a note on your interview, as the practice guide suggests: symptoms observed, key learning."""
            if not (symptoms.strip() or key_learning.strip()):
                raise ToolError("write symptoms and/or key_learning")
            interview_id = ctx.interview_id(interview_id)
            service.note(interview_id, None, symptoms, key_learning)
            return results.NoteSaved(saved=True, interview_id=interview_id,
                                     notes_on_record=service.store.count_events(interview_id, "note"))

        add_tool(server, record_note, results.NoteSaved)
