"""Interviews: a blind workspace with its answer key, a clock, and everything done in it.

No MCP here; the server's tools are thin calls into this module. A failure the caller can act on
raises InterviewError (or the workspace's and the catalogue's own errors), which the server turns
into a tool error. Every state change is written to the store before the method returns. Calls on
one interview are serialised by `lock` (a thread lock plus an flock, so two server processes on one
state directory serialise too); different interviews never share a workspace or a lock.
"""

import fcntl
import random
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bug_catalog.catalog import get_bug, load_catalog
from bug_catalog.checking import run_checks
from bug_catalog.selection import choose, matching
from bug_synth.synth_bug import SLUG as SYNTH_SLUG, catalogue_only, from_entry
from sandbox import codebases
from sandbox.codebase import overlaps
from sandbox.codebases import CodebaseError
from sandbox.state import state_dir
from sandbox.workspace import WorkspaceError, create_workspace, is_pristine_copy, load_answer_key, read_codebase
from server import grading, locate, snippet
from server.progress_notes import stage_units
from server.store import CLOCK_STARTS, Store

# a codebase's edits and checks (bug_catalog/targets) load torch and libcst: the codebase objects
# import them when asked, so a server answers initialize and tools/list without either
INTERVIEW_ID = re.compile(r"^[0-9a-f]{12}$")
DEFAULT_TIME_LIMIT_S = 20 * 60
DEFAULT_DIAGNOSES_PER_BUG = 3
NO_BUG = "none"
MAX_DRAWS = 3  # bugs a random draw tries on a checkout whose measurement refuses them (minutes each)
SYNTH = "synth"  # bug="synth" draws a synthesized bug from the codebase's pool; "synth:<id>" names one
KINDS = ("code_review", "production_debugging", "practice")

# hints for an interview with no bug (a control): the same shape as a record's ladder
GENERIC_HINTS = [
    "Compare a short run with the baseline before reading code: loss, val loss, lr and grad norm.",
    "Walk one training step from batch to zero_grad and check each stage against what it should do.",
    "Check the parts bugs usually hide in: masking, scaling, schedules, data order and evaluation.",
]


class InterviewError(Exception):
    """Something the caller asked that this interview cannot do; the message says what to do instead."""


@dataclass(frozen=True)
class Clock:
    elapsed_s: int
    limit_s: int
    remaining_s: int
    over_time: bool
    note: str
    started: bool  # False while the clock waits for the candidate's first call
    starts: str    # "now", "first_call" or "default" (start_interview's clock_starts)


def _mmss(seconds):
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


@dataclass
class Interview:
    id: str
    kind: str
    bugs: list
    codebase: str
    seed: int
    workspace: Path
    time_limit_s: int
    snippet: list
    started: float
    ended: float | None
    verdict: str | None
    time_to_find_s: float | None
    diagnoses_per_bug: int | None = None  # None: started before budgets existed, held to the default
    clock_starts: str | None = "now"  # None: the default, "first_call" once a candidate server is bound to it
    clock_started: float | None = None  # with "first_call": when the candidate's first call came

    @classmethod
    def from_row(cls, row):
        return cls(**{**row, "workspace": Path(row["workspace"])})

    @property
    def is_open(self):
        return self.ended is None

    @property
    def diagnosis_budget(self):
        """Diagnoses allowed in all: so many per injected bug; a control (no bug) gets one bug's worth.
        One total, not a count per bug, as counting per bug would tell which bug a claim matched."""
        per_bug = self.diagnoses_per_bug or DEFAULT_DIAGNOSES_PER_BUG
        return per_bug * max(1, len(self.bugs))

    @property
    def clock_start(self):
        """When the clock started: at creation, or at the candidate's first call (None until it comes)."""
        return self.clock_started if self.clock_starts == "first_call" else self.started

    def seconds_on_clock(self, now):
        start = self.clock_start
        return 0.0 if start is None else max(0.0, now - start)

    def clock(self, now=None):
        starts = self.clock_starts or "default"
        limit = _mmss(self.time_limit_s)
        if self.clock_start is None:
            note = (f"not started: it starts at the candidate's first call ({limit} limit)" if self.is_open else
                    f"the interview ended before the candidate's first call: the clock never started ({limit} limit)")
            return Clock(0, self.time_limit_s, self.time_limit_s, False, note, False, starts)
        now = self.ended or (time.time() if now is None else now)
        elapsed = int(self.seconds_on_clock(now))
        remaining = max(0, self.time_limit_s - elapsed)
        over = elapsed > self.time_limit_s
        if over:
            note = (f"over the {limit} limit by {_mmss(elapsed - self.time_limit_s)}: a real "
                    "interview would move on now (the tools keep working)")
        else:
            note = f"{_mmss(elapsed)} of {limit} used"
        if starts == "first_call":
            note += " (counted from the candidate's first call)"
        return Clock(elapsed, self.time_limit_s, remaining, over, note, True, starts)


@dataclass(frozen=True)
class StageResult:
    """One part of a verification: a bug's behavioural check, or (later) a short run against baseline."""
    name: str
    passed: bool
    detail: str = ""
    bug_id: int | None = None  # None: the stage is about the whole workspace


def every_check(key):
    """The names of every behavioural check of an answer key's codebase; none for an edited copy
    of the built-in codebase (its code may have moved away from what the checks call)."""
    codebase = codebases.of_key(key)
    return codebase.checks() if key["codebase"] in ("builtin", codebase.name) else set()


# a workspace restored to the pristine code byte for byte is judged by what it is, not run again
PRISTINE_COPY = ("not run: every file of the workspace is byte for byte the pristine code's, none added or "
                 "missing, so there is nothing left to fix")


def checked(interview, names, report):
    """{name: {"passed", "detail"}} of the checks run on the workspace, in two child processes."""
    if report:
        report(0, 1, f"behavioural checks: running {len(names)}")
    # each check runs once: the 2-rank ones run a rank lost in gloo's teardown again themselves
    # (bug_catalog/support.run_ranks), and a second run of whatever failed would make the time a
    # verification takes say which check failed
    return run_checks(str(interview.workspace), names, jobs=2)


def bug_checks(interview, key, report=None):
    """The default verification stage: every behavioural check of the codebase, whatever the bug
    (so neither the answer nor the time it takes says which bug), in two child processes. Each
    injected bug's own check is its stage; the others together say whether the fix broke
    something else."""
    catalog = load_catalog()
    codebase = codebases.of_key(key)
    # a synthesized bug has no check of its own: every check still passing, and the runs, judge it
    own = {codebase.check_for(catalog[b["id"]]): b["id"] for b in catalogue_only(key)["bugs"]}
    names = sorted(every_check(key) | set(own))
    pristine = is_pristine_copy(interview.workspace, codebases.source_of(key))
    if pristine:
        if report:
            report(1, 1, "behavioural checks: none run, the workspace is the pristine code byte for byte")
        results = {name: {"passed": True, "detail": PRISTINE_COPY} for name in names}
    else:
        results = checked(interview, names, report)
    stages = [StageResult(name, results[name]["passed"], results[name]["detail"], bug_id)
              for name, bug_id in own.items()]
    others = [name for name in names if name not in own]
    if others:
        failing = [name for name in others if not results[name]["passed"]]
        detail = PRISTINE_COPY if pristine else "; ".join(f"{name}: {results[name]['detail'][:200]}" for name in failing)
        stages.append(StageResult(f"the other {len(others)} checks", not failing, detail))
    if report:
        report(1, 1, "behavioural checks: done")
    return stages


class Interviews:
    def __init__(self, store=None, workspaces_root=None):
        self.store = store or Store()
        self.workspaces_root = Path(workspaces_root) if workspaces_root else state_dir() / "workspaces"
        self.locks_dir = self.store.path.parent / "locks"
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._thread_locks = {}

    # lookup and locking

    def get(self, interview_id):
        if not isinstance(interview_id, str) or not INTERVIEW_ID.match(interview_id):
            raise InterviewError(f"{interview_id!r} is not an interview id (12 hex digits, as start_interview "
                                 "returns); interview_status lists the interviews")
        row = self.store.interview(interview_id)
        if row is None:
            raise InterviewError(f"unknown interview {interview_id}: interview_status lists the interviews, "
                                 "start_interview starts one")
        return Interview.from_row(row)

    def require_open(self, interview_id):
        interview = self.get(interview_id)
        if not interview.is_open:
            raise InterviewError(f"interview {interview_id} has ended ({interview.verdict}); start_interview "
                                 "starts a new one")
        return interview

    def all(self, ids=None):
        return [Interview.from_row(r) for r in self.store.interviews(ids)]

    # the clock of a candidate's interview

    def bind_candidate(self, interview_id):
        """A candidate server is served this interview: a clock left to its default now waits for the
        candidate's first call (the candidate may connect long after the interview was made)."""
        self.get(interview_id)  # an unknown id fails here
        self.store.bind_clock_to_first_call(interview_id)

    def candidate_call(self, interview_id):
        """A candidate's tool call on the interview: the first one starts a clock that waits for it."""
        row = self.store.interview(interview_id)
        if row is not None and row["clock_starts"] == "first_call" and row["clock_started"] is None:
            self.store.start_clock(interview_id, time.time())

    @contextmanager
    def lock(self, interview_id):
        """Serialise calls on one interview (threads of this server, and other servers on this state)."""
        self.get(interview_id)  # validates the id before it names a file
        with self._guard:
            thread_lock = self._thread_locks.setdefault(interview_id, threading.Lock())
        with thread_lock, open(self.locks_dir / f"{interview_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def key(self, interview):
        try:
            return load_answer_key(interview.workspace)
        except WorkspaceError:
            raise InterviewError(f"the answer key of interview {interview.id} is missing from the state "
                                 "directory; start a new interview") from None

    def record(self, interview_id, kind, payload):
        return self.store.add_event(interview_id, kind, payload)

    # starting

    def _codebase(self, codebase):
        """(source directory, the codebase as the answer key names it, the codebase object).
        The key names the built-in codebase "builtin", another codebase's checkout by that
        codebase's name, and an edited copy of the built-in codebase by its path.

        A path is recognised by a few marker files before anything under it is listed or read, so "/"
        or a home directory is refused at once instead of being copied; a checkout overlapping the
        state directory is refused too (its copy would carry answer keys)."""
        if codebase == "builtin":
            builtin = codebases.builtin()
            return builtin.source, "builtin", builtin
        path = Path(codebase).expanduser()
        if not path.is_absolute() or not path.is_dir():
            raise InterviewError(f"codebase must be 'builtin' or the absolute path of a directory, not {codebase!r}")
        found = codebases.recognise(path)
        if found is None:
            raise InterviewError(f"{codebase} is not a recognised checkout ({codebases.looked_for()}); "
                                 f"bugdrill doctor --codebase {codebase} says what it looks for")
        for private in {state_dir(), self.store.path.parent, self.workspaces_root}:
            if overlaps(path, private):
                raise InterviewError(f"{codebase} overlaps bugdrill's state directory ({private}): move the "
                                     "checkout, or the state directory (BUGDRILL_STATE_DIR), so neither holds the other")
        return path, found.name if found.source is None else codebase, found

    @staticmethod
    def _applicable(found, source, record, variant, drawn, seed, kind):
        """The pick as the checkout can hold it; on a checkout other than the built-in codebase it is
        measured there (sandbox/applicability.py), with its default run for production debugging."""
        try:
            return codebases.applicable_pick(found, source, record, variant, drawn, seed,
                                             run=kind == "production_debugging")
        except CodebaseError as error:
            raise InterviewError(str(error)) from None

    def _choose(self, kind, bug, variant, seed, codebase, **filters):
        source, name, found = self._codebase(codebase)
        if str(bug) != "random":
            picked = choose(str(bug), variant, seed)
            return self._applicable(found, source, *picked, variant is None, seed, kind)
        if variant is not None:  # its range would tell which bug was drawn
            raise InterviewError("a variant number needs a specific bug; with bug='random' the variant is drawn too")
        candidates = [r for r in matching(**filters) if kind == "practice" or kind in r.interview_types]
        applies = {row["bug"] for row in found.applicability(source, candidates) if row["applies"]}
        candidates = [r for r in candidates if r.id in applies]
        if not candidates:
            matched = "matches those filters" if any(filters.values()) else ""
            here = "" if name == "builtin" else f"applies to this {found.name} checkout"
            raise InterviewError(f"no bug in the catalogue {' and '.join(filter(None, (matched, here)))} for this "
                                 "kind of interview; list_bugs shows what there is, bugdrill doctor --codebase what "
                                 "applies to a checkout")
        # a drawn bug whose every variant the measurement refuses gives way to the next in the seed's order
        order = sorted(candidates, key=lambda r: r.id)
        random.Random(f"bug:{seed}").shuffle(order)
        refused = []
        for record in order[:MAX_DRAWS]:
            try:
                return self._applicable(found, source, *choose(str(record.id), variant, seed), True, seed, kind)
            except InterviewError as error:
                refused.append(str(error))
        raise InterviewError(f"no drawn bug applies to this checkout as measured: {'; '.join(refused)}")

    def start(self, kind, bug="random", variant=None, seed=None, category=None, priority=None, difficulty=None,
              codebase="builtin", time_limit_s=DEFAULT_TIME_LIMIT_S, diagnoses_per_bug=DEFAULT_DIAGNOSES_PER_BUG,
              clock_starts=None):
        if kind not in KINDS:
            raise InterviewError(f"kind must be one of {', '.join(KINDS)}")
        seed = secrets.randbelow(2**31) if seed is None else seed
        if str(bug) == NO_BUG:  # a control: the right answer is that nothing is wrong
            if variant is not None or category or priority or difficulty:
                raise InterviewError("bug='none' starts an interview with no bug: give no variant or filters")
            return self.start_with(kind, [], seed, codebase, time_limit_s, diagnoses_per_bug, clock_starts)
        if str(bug) == SYNTH or str(bug).startswith(SYNTH + ":"):
            if variant is not None or category or priority:
                raise InterviewError("a synthesized bug has no variant, category or priority: give at most a "
                                     "difficulty")
            chosen = [self.synthesized(codebase, str(bug).partition(":")[2] or None, seed, difficulty)]
            return self.start_with(kind, chosen, seed, codebase, time_limit_s, diagnoses_per_bug, clock_starts)
        try:
            chosen = [self._choose(kind, bug, variant, seed, codebase, category=category, priority=priority,
                                   difficulty=difficulty)]
        except ValueError as error:  # a variant out of range
            raise InterviewError(str(error)) from None
        return self.start_with(kind, chosen, seed, codebase, time_limit_s, diagnoses_per_bug, clock_starts)

    def synthesized(self, codebase, bug_id, seed, difficulty=None):
        """(SynthBug, its mutated text) from the pool of the codebase's checkout: the one named, or
        one drawn with the seed."""
        from bug_synth.pool import Pool, PoolError

        source, _, found = self._codebase(codebase)
        try:
            return Pool(found, source).pick(bug_id, seed, difficulty)
        except PoolError as error:
            raise InterviewError(str(error)) from None

    def start_with(self, kind, chosen, seed, codebase="builtin", time_limit_s=DEFAULT_TIME_LIMIT_S,
                   diagnoses_per_bug=DEFAULT_DIAGNOSES_PER_BUG, clock_starts=None):
        """Start an interview holding exactly the chosen (record, variant) picks: none (a control,
        where nothing is wrong), one, or two (a compound episode, a verdict per bug).

        clock_starts: "now", "first_call" (the candidate's first tool call on it), or None, the
        default: from now, unless a candidate server is bound to the interview (bind_candidate)."""
        if kind not in KINDS:
            raise InterviewError(f"kind must be one of {', '.join(KINDS)}")
        if clock_starts is not None and clock_starts not in CLOCK_STARTS:
            raise InterviewError(f"clock_starts must be one of {', '.join(CLOCK_STARTS)}, not {clock_starts!r}")
        if isinstance(diagnoses_per_bug, bool) or not isinstance(diagnoses_per_bug, int) or diagnoses_per_bug < 1:
            raise InterviewError(f"diagnoses_per_bug must be a whole number of at least 1, not {diagnoses_per_bug!r}")
        source, name, found = self._codebase(codebase)
        try:  # the catalogue's picks as the codebase's own edits; a synthesized bug is its own edit
            chosen = [(record, variant if isinstance(variant, str) else found.injected(record, variant))
                      for record, variant in chosen]
        except CodebaseError as error:
            raise InterviewError(f"{error}: bugdrill doctor --codebase {codebase} lists what applies") from None
        interview_id = secrets.token_hex(6)
        workspace = self.workspaces_root / interview_id / found.workspace_name(source)
        try:
            key = create_workspace(workspace, source, chosen, name, seed, codebase_kind=found.name)
        except OSError as error:  # a custom codebase with unreadable files
            raise InterviewError(f"cannot copy the codebase {codebase!r}: {error}") from None
        homes = set() if key["bugs"] else found.review_files()  # a control's window falls where bugs live
        control_files = {p: t for p, t in read_codebase(source).items() if p in homes} if homes else {}
        row = {"id": interview_id, "kind": kind, "bugs": [{"id": b["id"], "variant": b["variant"]} for b in key["bugs"]],
               "codebase": codebase, "seed": seed, "workspace": key["workspace"], "time_limit_s": int(time_limit_s),
               "snippet": snippet.plan(key["bugs"], seed, control_files), "started": time.time(), "ended": None,
               "verdict": None, "time_to_find_s": None, "diagnoses_per_bug": diagnoses_per_bug,
               "clock_starts": clock_starts, "clock_started": None}
        with self.store.transaction() as db:
            self.store.insert_interview(row, db=db)
            for bug_entry in row["bugs"]:
                if isinstance(bug_entry["id"], int):  # progress is kept per catalogue bug
                    self.store.count_attempt(bug_entry["id"], db=db)
        return Interview.from_row(row)

    # what the candidate can ask for

    def snippet(self, interview):
        """[(path, first, last, numbered code)] of the interview's code-review windows."""
        key = self.key(interview)
        texts = {b["file"]: locate.bugged_text(b) for b in key["bugs"]}
        if not texts:
            texts = read_codebase(key["codebase_path"])
        return [(w["path"], w["first"], w["last"], snippet.render(w, texts[w["path"]])) for w in interview.snippet]

    def hint(self, interview_id):
        """(number, ladder length, hint texts: one per bug) of the next hint; recorded."""
        with self.lock(interview_id):
            interview = self.require_open(interview_id)
            catalog = load_catalog()
            ladders = [from_entry(b).hints() if b.get("synth") else catalog[b["id"]].hints
                       for b in self.key(interview)["bugs"]] or [GENERIC_HINTS]
            total = min(len(ladder) for ladder in ladders)
            number = self.store.count_events(interview_id, "hint") + 1
            if number > total:
                raise InterviewError(f"all {total} hints have been used; submit_diagnosis or end_interview")
            self.record(interview_id, "hint", {"number": number})
            return number, total, [ladder[number - 1] for ladder in ladders]

    def targets(self, interview):
        catalog = load_catalog()
        targets = []
        for bug in self.key(interview)["bugs"]:
            text = locate.bugged_text(bug)
            marks = locate.anchors(bug["diff"])
            names = locate.enclosing_functions(text, marks)
            all_functions = tuple(name for name, _, _ in locate.functions(text))
            synth = from_entry(bug)
            if synth:
                if synth.function:
                    names.add(synth.function)
                targets.append(grading.Target(synth.id, "a synthesized bug", synth.cause, bug["file"], tuple(marks),
                                              frozenset(names), all_functions,
                                              tuple(tuple(g) for g in synth.cause_terms)))
                continue
            record = catalog[bug["id"]]
            if record.file == bug["file"]:
                names.add(record.function)
            targets.append(grading.Target(record.id, record.title, record.explanation.strip(), bug["file"],
                                          tuple(marks), frozenset(names), all_functions,
                                          tuple(tuple(g) for g in record.cause_terms)))
        return targets

    def diagnose(self, interview_id, file, line, function, text):
        """(grade, number of diagnoses so far). A correct diagnosis before any reveal counts as found.
        Past the interview's budget a diagnosis is refused, before it is graded or recorded."""
        with self.lock(interview_id):
            interview = self.require_open(interview_id)
            used = self.store.count_events(interview_id, "diagnosis")
            if used >= interview.diagnosis_budget:
                raise InterviewError(f"no diagnoses left: all {interview.diagnosis_budget} of this interview's budget "
                                     "are used, and a diagnosis past it is not graded; verify_fix or end_interview")
            result = grading.grade(self.targets(interview), file, line, function, text)
            revealed = self.store.count_events(interview_id, "reveal") > 0
            now = time.time()
            with self.store.transaction() as db:
                self.store.add_event(interview_id, "diagnosis", {
                    "file": file, "line": line, "function": function, "what_is_wrong": text,
                    "location_right": result.location_right, "cause_right": result.cause_right,
                    "score": result.score, "bug_id": result.target.bug_id if result.target else None,
                    "after_reveal": revealed}, db=db, at=now)
                if result.found and not revealed:
                    on_clock = interview.seconds_on_clock(now)
                    self.store.set_time_to_find(interview_id, on_clock, db=db)
                    if isinstance(result.target.bug_id, int):
                        self.store.raise_status(result.target.bug_id, "found", on_clock, db=db)
            return result, self.store.count_events(interview_id, "diagnosis")

    def verify(self, interview_id, max_verify=None, stages=(bug_checks,), report=None):
        """(fixed, stage results, verifications used). Counted, and limited by max_verify."""
        with self.lock(interview_id):
            interview = self.require_open(interview_id)
            used = self.store.count_events(interview_id, "verify")
            if max_verify is not None and used >= max_verify:
                raise InterviewError(f"the verification limit is reached ({used} of {max_verify} used); "
                                     "submit_diagnosis or end_interview")
            key = self.key(interview)
            if report:
                report.plan(len(stages) * stage_units(1))  # each stage reports its start and its end
            results = [r for stage in stages for r in stage(interview, key, report)]
            fixed = all(r.passed for r in results)
            with self.store.transaction() as db:
                self.store.add_event(interview_id, "verify", {"fixed": fixed, "stages": [
                    {"name": r.name, "passed": r.passed, "detail": r.detail, "bug_id": r.bug_id} for r in results]},
                    db=db)
                for bug in interview.bugs:
                    if isinstance(bug["id"], int) and all(r.passed for r in results if r.bug_id in (None, bug["id"])):
                        self.store.raise_status(bug["id"], "fixed", db=db)
            return fixed, results, used + 1

    def reveal(self, interview_id):
        """Everything about the interview's bugs; recorded. Works on ended interviews too."""
        with self.lock(interview_id):
            interview = self.get(interview_id)
            catalog = load_catalog()
            revealed = []
            key = self.key(interview)
            for bug in key["bugs"]:
                if bug.get("synth"):
                    revealed.append(synthesized_reveal(from_entry(bug), bug))
                    continue
                record = catalog[bug["id"]]
                variant = next((v for v in record.variants if v.name == bug["variant"]), None)
                revealed.append({
                    "id": record.id, "slug": record.slug, "title": record.title, "category": record.category,
                    "priority": record.priority, "difficulty": record.difficulty, "variant": bug["variant"],
                    "variant_description": variant.description if variant else "", "file": bug["file"],
                    "diff": bug["diff"], "explanation": record.explanation.strip(), "symptom": record.symptom.strip(),
                    "symptom_on_this_codebase": codebases.of_key(key).symptom_here(
                        bug["id"], codebases.source_of(key), bug["variant"]),
                    "investigation": list(record.investigation), "hints": list(record.hints)})
            self.record(interview_id, "reveal", {"bugs": [b["id"] for b in revealed]})
            return interview, revealed

    def note(self, interview_id=None, bug=None, symptoms="", key_learning=""):
        """Add the guide's per-bug note (symptoms observed, key learning) to an interview's bugs, or to
        one bug by id or slug; returns the bug ids noted against."""
        note = {"time": time.time(), "interview_id": interview_id, "symptoms": symptoms, "key_learning": key_learning}
        if interview_id is None:
            bug_id = get_bug(bug).id
            self.store.add_note(bug_id, note)
            return [bug_id]
        with self.lock(interview_id):
            interview = self.get(interview_id)
            with self.store.transaction() as db:
                self.store.add_event(interview_id, "note", {"symptoms": symptoms, "key_learning": key_learning},
                                     db=db)
                for entry in interview.bugs:
                    if isinstance(entry["id"], int):
                        self.store.add_note(entry["id"], note, db=db)
            return [entry["id"] for entry in interview.bugs]

    # summary and end

    def summary(self, interview):
        events = self.store.events(interview.id)
        kinds = [e["kind"] for e in events]
        first_reveal = next((e["id"] for e in events if e["kind"] == "reveal"), None)
        found_ids = {e["payload"]["bug_id"] for e in events if e["kind"] == "diagnosis"
                     and e["payload"]["location_right"] and e["payload"]["cause_right"]
                     and (first_reveal is None or e["id"] < first_reveal)}
        verifies = [e for e in events if e["kind"] == "verify"]
        found = bool(interview.bugs) and all(b["id"] in found_ids for b in interview.bugs)
        fixed = bool(verifies) and verifies[-1]["payload"]["fixed"]
        if found and fixed:
            verdict = "solved"
        elif found:
            verdict = "found"
        elif fixed:
            verdict = "fixed"
        elif first_reveal is not None:
            verdict = "revealed"
        else:
            verdict = "unsolved"
        return {"hints_used": kinds.count("hint"), "diagnoses": kinds.count("diagnosis"),
                "diagnoses_left": max(0, interview.diagnosis_budget - kinds.count("diagnosis")),
                "verifies": kinds.count("verify"), "edits": kinds.count("edit"),
                # a run is recorded when it starts and again when it ends: count runs, not records
                "runs": len({e["payload"].get("training") for e in events if e["kind"] == "run"}),
                "found": found, "fixed": fixed, "revealed": first_reveal is not None,
                "verdict": interview.verdict or verdict, "events": events}

    def end(self, interview_id):
        with self.lock(interview_id):
            interview = self.require_open(interview_id)
            summary = self.summary(interview)
            now = time.time()
            with self.store.transaction() as db:
                self.store.add_event(interview_id, "end", {"verdict": summary["verdict"]}, db=db, at=now)
                self.store.end_interview(interview_id, now, summary["verdict"], db=db)
            return self.get(interview_id), summary


def synthesized_reveal(synth, entry):
    """What `reveal` says of a synthesized bug: the operator, the diff, the cause, and what the run
    that kept it measured (scenario, steps, symptom classes and summary)."""
    return {"id": synth.id, "slug": SYNTH_SLUG, "title": f"a synthesized bug ({synth.family})", "category": "",
            "priority": None, "difficulty": synth.difficulty, "variant": synth.family,
            "variant_description": f"operator {synth.family}: `{synth.before}` became `{synth.after}`",
            "file": entry["file"], "diff": entry["diff"], "explanation": synth.cause,
            "symptom": f"{synth.summary} (measured: {', '.join(synth.commands)}; {synth.steps} steps logged; "
                       f"symptom classes {', '.join(synth.symptoms)}; difficulty {synth.difficulty}: "
                       f"{synth.evidence})",
            "symptom_on_this_codebase": "", "investigation": synth.hints(),
            "hints": synth.hints(), "function": synth.function, "line": synth.line}
