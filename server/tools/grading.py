"""Judging the candidate: verify_fix (the fix, by behaviour) and submit_diagnosis (the diagnosis, by
location and cause). Neither says which bug; the interviewer's results add what scoring needs.

verify_fix runs the stages in ctx.verify_stages (today: the bugs' behavioural checks); a short run
against baseline is one more stage appended there, reporting progress through `report`."""

from typing import Annotated

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context
from pydantic import Field

from sandbox.shown_paths import for_candidate, workspace_places
from server import results
from server.context import add_tool
from server.grading import MAX_CLAIM_CHARS, feedback
from server.interviews import PRISTINE_COPY
from server.tools.common import InterviewIdParam, clock
from server.tools.training import progress_notes


def register(server, ctx):
    service = ctx.interviews

    async def verify_fix(context: Context, interview_id: InterviewIdParam = None) -> results.VerificationFull:
        """Check whether the workspace's bug is fixed, by behaviour: the codebase's checks and runs
        against the pristine code's, not a comparison with any expected text (a workspace whose files
        are the pristine code's is fixed with nothing run). Says fixed or not fixed, never which bug.
        Each call is counted and the server may limit them."""
        interview_id = ctx.interview_id(interview_id)
        notes = progress_notes(context)

        def work():
            try:
                verified = service.verify(interview_id, ctx.max_verify, ctx.verify_stages, notes)
                notes.finish("verification: done")
                return verified
            finally:
                notes.flush()

        fixed, stages, used = await anyio.to_thread.run_sync(work)
        interview = service.get(interview_id)
        left = None if ctx.max_verify is None else max(0, ctx.max_verify - used)
        if fixed and all(s.detail == PRISTINE_COPY for s in stages):
            message = "Fixed: the workspace is the pristine code, byte for byte; nothing needed running."
        else:
            message = ("Fixed: the checks pass." if fixed else
                       "Not fixed: the checks still fail. Keep looking, or submit_diagnosis with what you think it is.")
        places = workspace_places(interview.workspace)  # a check's traceback names paths as its process saw them
        checks = [results.CheckOutcome(name=s.name, bug_id=s.bug_id, passed=s.passed,
                                       detail=for_candidate(s.detail, places)) for s in stages]
        return results.VerificationFull(
            interview_id=interview_id, fixed=fixed, verifies_used=used, verifies_left=left, message=message,
            clock=clock(interview), checks=checks)

    add_tool(server, verify_fix, results.VerificationFull if ctx.interviewer else results.Verification)

    def submit_diagnosis(
        file: Annotated[str, Field(min_length=1, max_length=1000, description="the file the bug is in")],
        what_is_wrong: Annotated[str, Field(min_length=3, max_length=MAX_CLAIM_CHARS, description=(
            "what exactly is wrong and why it breaks training, in a sentence or two: one cause (a claim "
            "that would fit many bugs' causes counts as none)"))],
        interview_id: InterviewIdParam = None,
        line: Annotated[int | None, Field(ge=1, le=10_000_000, description="the line (as the file reads in the "
                                                                            "workspace's commit)")] = None,
        function: Annotated[str | None, Field(max_length=200, description=(
            "the function (or Class.method) it is in, if you prefer that to a line"))] = None,
    ) -> results.DiagnosisReview:
        """Submit a diagnosis: file, line (or function) and what is wrong. Graded for location and cause;
        the result says right or wrong for each, never which bug. Diagnoses are budgeted (3 per bug
        unless the interviewer set another number): interview_status says how many are left."""
        interview_id = ctx.interview_id(interview_id)
        grade, count = service.diagnose(interview_id, file, line, function, what_is_wrong)
        target = grade.target
        interview = service.get(interview_id)
        return results.DiagnosisReview(
            interview_id=interview_id, location_right=grade.location_right, cause_right=grade.cause_right,
            found=grade.found, score=grade.score, message=feedback(grade), diagnoses_submitted=count,
            diagnoses_left=max(0, interview.diagnosis_budget - count), clock=clock(interview),
            matched_bug_id=target.bug_id if target else None,
            matched_bug_title=target.title if target else None, explanation=target.explanation if target else None)

    add_tool(server, submit_diagnosis, results.DiagnosisReview if ctx.interviewer else results.DiagnosisResult)
