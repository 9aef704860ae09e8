"""Starting, following and ending an interview: start_interview, interview_status, get_snippet,
get_hint, reveal (interviewer only) and end_interview."""

from typing import Annotated, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from bug_catalog.schema import Category
from server import results
from server.context import add_tool
from server.interviews import DEFAULT_DIAGNOSES_PER_BUG
from server.tools.common import InterviewIdParam, clock, summary

Kind = Annotated[Literal["code_review", "production_debugging", "practice"], Field(
    description="code_review: find the bug in a 20-30 line snippet, no logs; production_debugging: start from "
                "the symptoms of a run and ask for diagnostics; practice: free, the guide's 'inject a bug blindly'")]
BugParam = Annotated[int | Annotated[str, Field(max_length=64)], Field(
    description="a bug id from list_bugs, its slug, 'random' (drawn with the seed, within the filters), "
                "'none' (a control: nothing is wrong, and the right answer says so), or 'synth' (a synthesized "
                "bug drawn from the codebase's pool, built by `bugdrill synth`; 'synth:<id>' names one)")]
VariantParam = Annotated[int | None, Field(ge=1, le=20, description="variant number (default: drawn with the seed)")]
SeedParam = Annotated[int | None, Field(ge=0, le=2**31 - 1, description="makes the draw reproducible")]
CategoryParam = Annotated[Category | None, Field(description="for a random bug: only this category")]
PriorityParam = Annotated[int | None, Field(ge=1, le=3, description="for a random bug: only this priority")]
DifficultyParam = Annotated[Literal["easy", "medium", "hard"] | None,
                            Field(description="for a random bug: only this difficulty")]
MinutesParam = Annotated[int, Field(ge=1, le=240, description="time limit in minutes (real interviews: 20)")]
ClockStartsParam = Annotated[Literal["now", "first_call"] | None, Field(description=(
    "when the clock starts: 'now', or 'first_call' (the candidate's first call of a tool that takes this "
    "interview, interview_status included; until then results say the clock has not started). Left out: "
    "'now', unless a candidate server is bound to the interview (bugdrill serve --role candidate --interview "
    "ID, the eval's candidate server), which makes it 'first_call' when it starts"))]

NEXT_STEPS = {
    "code_review": "Call get_snippet for the code under review (20-30 numbered lines, no logs); read_file and "
                   "search_code show the rest of the workspace. Then submit_diagnosis (file, line, what is wrong); "
                   "optionally fix it with edit_file and check with verify_fix.",
    "production_debugging": "Start from the symptoms: run training and ask for the diagnostic views you need, one "
                            "at a time; read_file and search_code the workspace; submit_diagnosis when you know "
                            "where and why; fix with edit_file and check with verify_fix.",
    "practice": "A bug was injected silently into the workspace. Debug it your way: run, read, search, edit; "
                "get_hint climbs the hint ladder; submit_diagnosis and verify_fix grade you.",
}


def register(server, ctx):
    service = ctx.interviews

    def started(interview):
        if ctx.started_here is not None:
            ctx.started_here.add(interview.id)
        return results.InterviewStarted(
            interview_id=interview.id, kind=interview.kind, workspace=str(interview.workspace), seed=interview.seed,
            clock=clock(interview), next_steps=NEXT_STEPS[interview.kind])

    if ctx.bound_interview is None:
        if ctx.interviewer:
            def start_interview(
                kind: Kind, bug: BugParam = "random", variant: VariantParam = None, seed: SeedParam = None,
                category: CategoryParam = None, priority: PriorityParam = None, difficulty: DifficultyParam = None,
                codebase: Annotated[str, Field(max_length=1000, description=(
                    "'builtin' (the practice codebase) or the absolute path of a checkout bugdrill recognises; "
                    "only bugs that apply to that checkout (bugdrill doctor --codebase lists them)"))
                ] = "builtin",
                time_limit_minutes: MinutesParam = 20,
                diagnoses_per_bug: Annotated[int, Field(ge=1, le=50, description=(
                    "the candidate's diagnosis budget per injected bug; past it submit_diagnosis refuses"))
                ] = DEFAULT_DIAGNOSES_PER_BUG,
                clock_starts: ClockStartsParam = None,
            ) -> results.InterviewStarted:
                """Start an interview: inject a bug silently into a new blind workspace. Its clock starts now,
                or at the candidate's first call (clock_starts; the default for an interview served by a
                candidate server bound to it). The result never names the bug; reveal does, when the
                interview is over."""
                return started(service.start(kind, bug, variant, seed, category, priority, difficulty, codebase,
                                             time_limit_minutes * 60, diagnoses_per_bug, clock_starts))
        else:
            def start_interview(
                kind: Kind, bug: BugParam = "random", variant: VariantParam = None, seed: SeedParam = None,
                category: CategoryParam = None, priority: PriorityParam = None, difficulty: DifficultyParam = None,
                time_limit_minutes: MinutesParam = 20,
            ) -> results.InterviewStarted:
                """Start an interview on the built-in codebase: a bug is injected silently into a new blind
                workspace and the clock starts. Nothing you are shown says which bug or where."""
                return started(service.start(kind, bug, variant, seed, category, priority, difficulty, "builtin",
                                             time_limit_minutes * 60, clock_starts="now"))
        add_tool(server, start_interview, results.InterviewStarted)

    def interview_status(interview_id: InterviewIdParam = None) -> results.StatusReportFull:
        """One interview's state and clock (elapsed, remaining, over time, or not started while it waits for
        the candidate's first call), or, without an id, every interview this server serves (a candidate
        server: the ones it is bound to or started)."""
        if interview_id is None and ctx.bound_interview is None:
            return results.StatusReportFull(interviews=[summary(ctx, i) for i in service.all(ctx.visible())])
        interview = service.get(ctx.interview_id(interview_id))
        return results.StatusReportFull(interviews=[summary(ctx, interview, with_events=True)])

    add_tool(server, interview_status, results.StatusReportFull if ctx.interviewer else results.StatusReport)

    def get_snippet(interview_id: InterviewIdParam = None) -> results.Snippet:
        """The code under review in a code-review interview: 20-30 numbered lines of one file (the same
        lines every time you ask), with the file's path."""
        interview = service.require_open(ctx.interview_id(interview_id))
        if interview.kind != "code_review" and not ctx.interviewer:
            raise ToolError(f"this is a {interview.kind.replace('_', ' ')} interview, which has no code-review "
                            "snippet: start from the symptoms, read_file and search_code")
        windows = service.snippet(interview)
        service.record(interview.id, "view", {"view": "snippet"})
        return results.Snippet(interview_id=interview.id, clock=clock(interview), snippets=[
            results.CodeWindow(path=path, first_line=first, last_line=last, code=code)
            for path, first, last, code in windows])

    add_tool(server, get_snippet, results.Snippet)

    def get_hint(interview_id: InterviewIdParam = None) -> results.HintResult:
        """The next hint of the ladder (the n-th call gives hint n); every hint asked for is recorded."""
        interview_id = ctx.interview_id(interview_id)
        number, total, hints = service.hint(interview_id)
        return results.HintResult(interview_id=interview_id, number=number, of=total, hints=hints,
                                  clock=clock(service.get(interview_id)))

    add_tool(server, get_hint, results.HintResult)

    if ctx.interviewer:
        def reveal(interview_id: InterviewIdParam = None) -> results.Revealed:
            """Reveal the interview's bug: id, title, variant, the diff that injected it, the explanation,
            the symptom and the investigation a strong candidate would make. Recorded; a diagnosis after
            a reveal no longer counts as found."""
            interview, bugs = service.reveal(ctx.interview_id(interview_id))
            return results.Revealed(interview_id=interview.id, clock=clock(interview),
                                    bugs=[results.RevealedBug(**b) for b in bugs])

        add_tool(server, reveal, results.Revealed)

    def end_interview(interview_id: InterviewIdParam = None) -> results.InterviewEnded:
        """End the interview: stops the clock and records the verdict (solved, found, fixed, revealed or
        unsolved). The workspace stays for review."""
        interview, done = service.end(ctx.interview_id(interview_id))
        shown = clock(interview)
        on_clock = (f"after {shown.elapsed_s // 60}:{shown.elapsed_s % 60:02d}" if shown.started
                    else "before the candidate's first call (the clock never started)")
        message = (f"Interview ended: {done['verdict']} {on_clock}"
                   f"{' (over time)' if shown.over_time else ''}; "
                   f"{done['hints_used']} hint(s), {done['diagnoses']} diagnosis(es), {done['verifies']} verification(s).")
        return results.InterviewEnded(
            interview_id=interview.id, verdict=done["verdict"], found=done["found"], fixed=done["fixed"],
            revealed=done["revealed"], time_to_find_s=interview.time_to_find_s, hints_used=done["hints_used"],
            diagnoses=done["diagnoses"], verifies=done["verifies"], clock=shown, message=message)

    add_tool(server, end_interview, results.InterviewEnded)
