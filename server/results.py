"""The tools' results, as pydantic models (the structured content a client gets).

Where the roles differ, the candidate's model is the base class and the interviewer's adds fields;
`context.add_tool` gives each role its own model, so a candidate's schema has no interviewer field."""

from pydantic import BaseModel, Field


class Clock(BaseModel):
    elapsed_s: int
    limit_s: int
    remaining_s: int
    over_time: bool
    note: str = Field(description="elapsed of limit (or that the clock waits for the candidate's first call); "
                                  "past the limit, a reminder that a real interview moves on")
    started: bool = Field(description="false while the clock waits for the candidate's first call")
    starts: str = Field(description=(
        "when the clock starts: 'now' (when the interview was made), 'first_call' (the candidate's first tool "
        "call on the interview), 'default' (when it was made, until a candidate server is bound to it: then "
        "'first_call')"))


# catalogue

class BugSummary(BaseModel):
    id: int
    title: str
    category: str
    priority: int
    difficulty: str


class BugEntry(BugSummary):
    slug: str
    tier: int
    file: str
    function: str
    observable: str
    scenario: str
    interview_types: list[str]
    variants: list[str]


class BugList(BaseModel):
    count: int
    bugs: list[BugSummary]


class BugCatalog(BugList):
    bugs: list[BugEntry]


# interviews

class InterviewStarted(BaseModel):
    interview_id: str
    kind: str
    workspace: str = Field(description="the blind workspace: a git repository whose one commit holds the code")
    seed: int
    clock: Clock
    next_steps: str


class CodeWindow(BaseModel):
    path: str
    first_line: int
    last_line: int
    code: str = Field(description="numbered lines: 'N | code'")


class Snippet(BaseModel):
    interview_id: str
    snippets: list[CodeWindow]
    clock: Clock


class HintResult(BaseModel):
    interview_id: str
    number: int
    of: int
    hints: list[str] = Field(description="the hint at this rung of the ladder")
    clock: Clock


class RevealedBug(BaseModel):
    id: int | str = Field(description="a catalogue id, or a synthesized bug's ('s' and 11 hex digits)")
    slug: str
    title: str
    category: str = Field(description="the catalogue's category; empty for a synthesized bug")
    priority: int | None = Field(description="the catalogue's priority; null for a synthesized bug")
    difficulty: str
    variant: str
    variant_description: str
    file: str
    diff: str
    explanation: str
    symptom: str = Field(description="what runs showed on the built-in codebase, where the catalogue measured it")
    symptom_on_this_codebase: str = Field(
        "", description="on another codebase: what its runs showed, or that none were made")
    investigation: list[str]
    hints: list[str]


class Revealed(BaseModel):
    interview_id: str
    bugs: list[RevealedBug]
    clock: Clock


class EventEntry(BaseModel):
    time: float
    kind: str
    payload: dict


class InterviewSummary(BaseModel):
    interview_id: str
    kind: str
    state: str = Field(description="open or ended")
    workspace: str
    started: float
    clock: Clock
    hints_used: int
    diagnoses: int
    diagnoses_left: int = Field(description="diagnoses the budget still allows (so many per injected bug)")
    verifies: int
    isolation: str = Field(description=(
        "how the server runs the workspace's code: 'isolated' (an unprivileged user in namespaces of its own, "
        "no access to bugdrill's files), 'isolated (user namespace)' (the server's uid in a user namespace, on a "
        "root that holds none of bugdrill's files, without capabilities) or 'honour system' (this machine "
        "cannot isolate it)"))
    edits: int
    runs: int
    found: bool
    fixed: bool
    verdict: str | None = Field(description="set when the interview ends: solved, found, fixed, revealed, unsolved")
    time_to_find_s: float | None


class InterviewSummaryFull(InterviewSummary):
    bugs: list[dict] = Field(description="bug ids and variants of the answer key")
    revealed: bool
    events: list[EventEntry] | None = Field(default=None, description="every event, when one interview is asked for")


class StatusReport(BaseModel):
    interviews: list[InterviewSummary]


class StatusReportFull(StatusReport):
    interviews: list[InterviewSummaryFull]


class InterviewEnded(BaseModel):
    interview_id: str
    verdict: str
    found: bool
    fixed: bool
    revealed: bool
    time_to_find_s: float | None
    hints_used: int
    diagnoses: int
    verifies: int
    clock: Clock
    message: str


# workspace

class FileList(BaseModel):
    path: str
    files: list[str]
    truncated: bool


class FileExcerpt(BaseModel):
    path: str
    first_line: int
    last_line: int
    total_lines: int
    truncated: bool = Field(description="true when the range was cut at the per-call line limit")
    code: str = Field(description="numbered lines: 'N | code'")


class SearchMatch(BaseModel):
    path: str
    line: int
    text: str


class SearchResult(BaseModel):
    pattern: str
    count: int
    truncated: bool
    files_searched: int
    matches: list[SearchMatch]


class EditResult(BaseModel):
    path: str
    created: bool
    diff: str = Field(description="unified diff of this edit (cut at 4000 characters)")
    clock: Clock


# grading

class Verification(BaseModel):
    interview_id: str
    fixed: bool
    verifies_used: int
    verifies_left: int | None = Field(description="null: no limit")
    message: str
    clock: Clock


class CheckOutcome(BaseModel):
    name: str
    bug_id: int | str | None
    passed: bool
    detail: str


class VerificationFull(Verification):
    checks: list[CheckOutcome]


class DiagnosisResult(BaseModel):
    interview_id: str
    location_right: bool
    cause_right: bool
    found: bool = Field(description="location and cause both right")
    score: float = Field(description="0, 0.5 or 1: half for the location, half for the cause")
    message: str
    diagnoses_submitted: int
    diagnoses_left: int = Field(description="diagnoses the budget still allows; past it a diagnosis is refused")
    clock: Clock


class DiagnosisReview(DiagnosisResult):
    matched_bug_id: int | str | None = Field(description="the bug the diagnosis was graded against (its best match)")
    matched_bug_title: str | None
    explanation: str | None = Field(description="the catalogue's explanation of that bug, for scoring")


# progress

class NoteEntry(BaseModel):
    time: float
    interview_id: str | None
    symptoms: str
    key_learning: str


class BugProgress(BaseModel):
    id: int
    title: str
    tier: int
    priority: int
    difficulty: str
    status: str = Field(description="not_started, attempted, found or fixed")
    attempts: int
    best_time_s: float | None
    notes: list[NoteEntry]


class NextBug(BaseModel):
    id: int
    title: str
    why: str


class CandidateProgress(BaseModel):
    interviews: list[InterviewSummary]
    notes: list[NoteEntry]


class Progress(CandidateProgress):
    interviews: list[InterviewSummaryFull]
    counts: dict[str, int] = Field(description="bugs per status")
    next_bug: NextBug | None
    bugs: list[BugProgress]


class NoteSaved(BaseModel):
    saved: bool
    interview_id: str | None
    notes_on_record: int


class NoteSavedFull(NoteSaved):
    bug_ids: list[int]
