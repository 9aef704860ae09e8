"""Pieces the tool groups share: the interview-id parameter and the conversions to result models."""

from typing import Annotated

from pydantic import Field

from sandbox import jail
from server import results

InterviewIdParam = Annotated[str | None, Field(
    max_length=64,
    description="the interview (start_interview returns its id); may be left out on a server bound to one")]


def clock(interview):
    return results.Clock(**vars(interview.clock()))


def isolation_mode():
    """How this server runs workspace code: in the jail, or on the honour system (and why not)."""
    try:
        return jail.mode()
    except jail.JailError as error:
        return f"refused: {error}"


def summary(ctx, interview, with_events=False):
    """An interview's summary with everything (bugs, events); add_tool cuts it down for a candidate."""
    done = ctx.interviews.summary(interview)
    return results.InterviewSummaryFull(
        interview_id=interview.id, kind=interview.kind, state="open" if interview.is_open else "ended",
        workspace=str(interview.workspace), started=interview.started, clock=clock(interview),
        hints_used=done["hints_used"], diagnoses=done["diagnoses"], diagnoses_left=done["diagnoses_left"],
        verifies=done["verifies"], isolation=isolation_mode(),
        edits=done["edits"], runs=done["runs"], found=done["found"], fixed=done["fixed"],
        verdict=interview.verdict, time_to_find_s=interview.time_to_find_s, bugs=interview.bugs,
        revealed=done["revealed"],
        events=[results.EventEntry(time=e["time"], kind=e["kind"], payload=e["payload"]) for e in done["events"]]
        if with_events else None)
