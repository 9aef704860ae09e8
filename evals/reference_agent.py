"""The reference agent: no language model, only the candidate tools and the rule book.

It is the floor any LLM agent should beat, and it makes the eval path testable offline. It
knows what the tools tell it and what evals/rulebook.py says about ML training in general;
it never reads the catalogue, the answer key or the state directory.

Production debugging: one run with the interview's default request; nothing abnormal (no
symptom class, or only "no visible effect") -> no diagnosis, "no bug found" (an episode may be
a control). Otherwise the rules for its symptom classes name one or two views to ask for and
the suspects to walk; each suspect's construct is found in the workspace (read_file, or
search_code where the codebase keeps it elsewhere) and tested; the best finding is diagnosed,
and a second one when the grader's answer or a second confirmed finding calls for it (an
episode may hold two bugs). A confirmed finding whose rule carries a mechanical fix is edited
and checked with verify_fix once. Code review: the snippet's lines are tested with every
suspect of its file; a bad line is diagnosed, nothing matching means no diagnosis.

Deterministic (no randomness, everything in a fixed order) and bounded (MAX_CALLS tool calls).
"""

import ast
import re
from dataclasses import dataclass

from evals.rulebook import NOTHING, SUSPECTS, crash_cause, rules_for
from evals.tool_text import read_result

MAX_CALLS = 25
WHOLE_RESULTS = 4 * 2**20  # bytes: the agent parses tool results, so they must arrive untruncated
MAX_DIAGNOSES = 2
MAX_VIEWS = 2
READ_CHUNK = 400  # read_file's most lines per call
NUMBERED = re.compile(r"^\s*(\d+) \| ?(.*)$")
RAISED_AT = re.compile(r"raised at ([\w./-]+\.py):(\d+) in (\S+?)[.,;]?(\s|$)")
NEAR = 3  # lines: two findings this close are one place


def parse_result(tool, text):
    """The fields of a tool result that its text says: what a model reads (evals/tool_text.py)."""
    return read_result(tool, text)


class ToolFailed(Exception):
    """A tool call came back as an error result; the message is the tool's."""


class OutOfCalls(Exception):
    pass


@dataclass
class Finding:
    suspect: str
    path: str
    line: int
    function: str | None
    confirmed: bool
    why: str
    score: float = 0.0
    absent: bool = False  # the construct is missing (the finding is where it belongs)

    @property
    def cause(self):
        suspect = SUSPECTS.get(self.suspect)
        return (self.absent and suspect.absent_cause) or suspect.cause


class Tools:
    """The call budget and the files read so far."""

    def __init__(self, call):
        self._call = call
        self.calls = 0
        self.files = {}

    async def __call__(self, name, **arguments):
        if self.calls >= MAX_CALLS:
            raise OutOfCalls(name)
        self.calls += 1
        return await self._call(name, arguments)

    async def lines(self, path):
        """The file's lines (index 0 is line 1), or None if it is not in the workspace."""
        if path in self.files:
            return self.files[path]
        lines, start = [], 1
        try:
            while True:
                excerpt = await self("read_file", path=path, start_line=start, end_line=start + READ_CHUNK - 1)
                for row in excerpt["code"].splitlines():
                    match = NUMBERED.match(row)
                    if match:
                        lines.append(match.group(2))
                if excerpt["last_line"] >= excerpt["total_lines"] or not excerpt["code"]:
                    break
                start = excerpt["last_line"] + 1
        except ToolFailed:
            lines = None if not lines else lines
        self.files[path] = lines
        return lines


# --- the code: functions and the tests a suspect makes -------------------------------------

def functions(lines):
    """[(qualified name, first line, last line)] with decorators counted in, innermost last.
    server/locate.py walks the tree the same way; the agent keeps its own copy because it must run
    where the bugdrill package is out of reach (an isolated eval agent has only the tools)."""
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return indented_functions(lines)
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    found.append((name, first, child.end_lineno))
                visit(child, name + ".")

    visit(tree, "")
    return found


def indented_functions(lines):
    """A fallback for a file that does not parse: `def` lines and their indented bodies."""
    found = []
    for i, text in enumerate(lines):
        match = re.match(r"^(\s*)(async\s+)?def\s+(\w+)", text)
        if not match:
            continue
        indent, end = len(match.group(1)), i + 1
        while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        found.append((match.group(3), i + 1, end))
    return found


def enclosing(funcs, line):
    inside = [f for f in funcs if f[1] <= line <= f[2]]
    return min(inside, key=lambda f: f[2] - f[1]) if inside else None


def is_bad(suspect, lines, index):
    if suspect.bad is None:
        return False
    if callable(suspect.bad):
        return suspect.bad(lines[index], "\n".join(lines[max(0, index - 2):index]))
    return re.search(suspect.bad, lines[index]) is not None


def examine(suspect, path, lines, window=None):
    """The suspect's findings in one file; `window` (first, last) keeps only lines inside it."""
    funcs = functions(lines)
    pattern = re.compile(suspect.pattern)
    hits = [i for i, text in enumerate(lines) if pattern.search(text)]
    text = "\n".join(lines)
    found = []
    for i in hits:
        line = i + 1
        func = enclosing(funcs, line)
        body = "\n".join(lines[func[1] - 1:func[2]]) if func else ""
        why = None
        if is_bad(suspect, lines, i):
            why = "the line has the known-bad form"
        elif func and (suspect.context is None or re.search(suspect.context, body, re.M)):
            before = "\n".join(lines[func[1] - 1:i])
            after = "\n".join(lines[i + 1:func[2]])
            if suspect.requires and not re.search(suspect.requires, body, re.M):
                why = "what must go with it is missing from its function"
            elif suspect.must_follow and re.search(suspect.must_follow, after, re.M) and not re.search(
                    suspect.must_follow, before, re.M):
                why = "it runs before what it must follow"
            elif suspect.must_precede and re.search(suspect.must_precede, before, re.M) and not re.search(
                    suspect.must_precede, after, re.M):
                why = "it runs after what it must precede"
        found.append(Finding(suspect.name, path, line, func[0] if func else None, why is not None,
                             why or "the construct is here and looks as it should"))
    if not hits and suspect.if_absent and (suspect.context is None or re.search(suspect.context, text, re.M)):
        anchor = re.compile(suspect.if_absent)
        for i, row in enumerate(lines):
            if anchor.search(row):
                func = enclosing(funcs, i + 1)
                found.append(Finding(suspect.name, path, i + 1, func[0] if func else None, True,
                                     "the construct is missing where it belongs", absent=True))
                break
    if window:
        found = [f for f in found if window[0] <= f.line <= window[1]]
    return found


def rank(findings, order, evidence_text, origin=None):
    """Scores: confirmed first, then the rule book's order, the words the run showed, and
    closeness to where a crash was raised."""
    text = evidence_text.lower()
    for f in findings:
        suspect = SUSPECTS[f.suspect]
        f.score = (100 if f.confirmed else 0) + (50 - order.index(f.suspect)) + 3 * sum(
            w.lower() in text for w in suspect.evidence)
        if origin and f.path == origin[0]:
            f.score += 20 if abs(f.line - origin[1]) <= 10 else 5
    return sorted(findings, key=lambda f: (-f.score, f.path, f.line))


def distinct(findings):
    """One finding per place (the best-ranked), so a second diagnosis is somewhere else."""
    kept = []
    for f in findings:
        if not any(k.path == f.path and abs(k.line - f.line) <= NEAR for k in kept):
            kept.append(f)
    return kept


# --- diagnosing -----------------------------------------------------------------------------

async def diagnose(tools, finding, cause):
    result = await tools("submit_diagnosis", file=finding.path, line=finding.line,
                         function=finding.function, what_is_wrong=cause)
    return result


async def submit_best(tools, ranked, guess_allowed):
    """Up to MAX_DIAGNOSES diagnoses: the best finding; a second when the first was not right
    (the next best), or when a second confirmed finding is elsewhere (two bugs)."""
    confirmed = [f for f in ranked if f.confirmed]
    queue = confirmed or (ranked[:1] if guess_allowed else [])
    if not queue:
        return []
    outcomes = []
    first = queue[0]
    result = await diagnose(tools, first, first.cause)
    outcomes.append((first, result))
    rest = [f for f in ranked if f is not first and (f.confirmed or not confirmed)
            and f.suspect != first.suspect]
    if rest and len(outcomes) < MAX_DIAGNOSES and (not result.get("found") and (confirmed or guess_allowed)
                                                    or (result.get("found") and rest[0].confirmed)):
        second = rest[0]
        outcomes.append((second, await diagnose(tools, second, second.cause)))
    return outcomes


async def mechanical_fix(tools, finding):
    """Apply the suspect's fix to a confirmed bad line and verify once; None if there is none."""
    suspect = SUSPECTS[finding.suspect]
    lines = tools.files.get(finding.path)
    if not (suspect.fix and finding.confirmed and lines):
        return None
    old = lines[finding.line - 1]
    new = re.sub(suspect.fix[0], suspect.fix[1], old)
    if new == old or sum(row == old for row in lines) != 1:
        return None
    await tools("edit_file", path=finding.path, old_text=old, new_text=new)
    verified = await tools("verify_fix")
    return bool(verified.get("fixed"))


def describe(outcomes, fixed=None):
    parts = []
    for finding, result in outcomes:
        verdict = ("location and cause right" if result.get("found") else
                   "location right" if result.get("location_right") else
                   "cause right" if result.get("cause_right") else "not right")
        parts.append(f"{finding.path}:{finding.line} ({finding.function or 'module level'}): {finding.suspect}, "
                     f"{finding.why} [{verdict}]")
    text = "Diagnosed " + "; ".join(parts) + "."
    if fixed is not None:
        text += " Mechanical fix " + ("verified." if fixed else "did not verify.")
    return text


# --- production debugging --------------------------------------------------------------------

async def scan_suspects(tools, names, window=None):
    """Findings of each suspect in its files; a suspect whose files are not in the workspace is
    looked for with search_code."""
    findings = []
    for name in names:
        suspect = SUSPECTS[name]
        present = False
        for path in suspect.files:
            lines = await tools.lines(path)
            if lines is None:
                continue
            present = True
            findings.extend(examine(suspect, path, lines, window))
        if not present:
            found = await tools("search_code", pattern=suspect.pattern, regex=True, max_results=20)
            for path in sorted({m["path"] for m in found["matches"]})[:2]:
                lines = await tools.lines(path)
                if lines:
                    findings.extend(examine(suspect, path, lines, window))
    return findings


async def production_debugging(tools):
    run = await tools("run_training")
    symptoms, summary = list(run["symptoms"]), run["summary"]
    if not symptoms or set(symptoms) <= NOTHING:
        return (f"No bug found: the run ({run['state']}) showed nothing abnormal against the baseline "
                f"({', '.join(symptoms) or 'no symptom classes'}). No diagnosis submitted.")
    rules = rules_for(symptoms, summary)
    evidence = [summary]
    views = list(dict.fromkeys(v for r in rules for v in r.views))[:MAX_VIEWS]
    for view in views:
        try:
            shown = await tools("get_view", run_id=run["run_id"], view=view)
            evidence.append(shown["text"])
        except ToolFailed:
            pass
    evidence_text = "\n".join(evidence)

    order = list(dict.fromkeys(s for r in rules for s in r.suspects))
    origin, crash = None, None
    raised = RAISED_AT.search(summary)
    if "crashed" in symptoms and raised:
        origin = (raised.group(1), int(raised.group(2)), raised.group(3))
        crash = crash_cause(summary)
        if crash:  # what the exception says outranks the generic crash list
            order = list(dict.fromkeys([*crash.suspects, *order]))
    if not order and not origin:
        return (f"Something is off ({', '.join(symptoms)}), but the rule book has no suspect for it; "
                "no diagnosis submitted.")
    findings = await scan_suspects(tools, order)
    ranked = distinct(rank(findings, order, evidence_text, origin))

    if origin and not any(f.confirmed for f in ranked):
        # nothing in the rule book confirmed: the place the traceback names, with what the exception means
        lines = await tools.lines(origin[0])
        func = enclosing(functions(lines), origin[1]) if lines else None
        at = Finding("crash_origin", origin[0], origin[1], func[0] if func else origin[2], True,
                     "the traceback's innermost workspace frame")
        cause = crash.cause if crash else f"the run crashes here: {summary[:300]}"
        result = await diagnose(tools, at, cause)
        return describe([(at, result)]) + f" Symptoms: {', '.join(symptoms)}."
    outcomes = await submit_best(tools, ranked, guess_allowed=True)
    if not outcomes:
        return f"Symptoms {', '.join(symptoms)}, but no suspect was found in the code; no diagnosis submitted."
    fixed = await mechanical_fix(tools, outcomes[0][0])
    return describe(outcomes, fixed) + f" Symptoms: {', '.join(symptoms)}."


# --- code review --------------------------------------------------------------------------------

async def code_review(tools):
    snippet = await tools("get_snippet")
    findings, order = [], []
    for window in snippet["snippets"]:
        path = window["path"]
        names = [n for n, s in SUSPECTS.items() if path in s.files] or list(SUSPECTS)
        order.extend(n for n in names if n not in order)
        lines = await tools.lines(path)
        if lines is None:  # the snippet alone: number its lines as the file does
            lines = [""] * (window["first_line"] - 1) + [
                m.group(2) for m in map(NUMBERED.match, window["code"].splitlines()) if m]
        for name in names:
            findings.extend(examine(SUSPECTS[name], path, lines, (window["first_line"], window["last_line"])))
    ranked = distinct(rank([f for f in findings if f.confirmed], order, ""))
    if not ranked:
        return "No bug found: no line of the snippet matches the rule book's code-review rules. No diagnosis submitted."
    outcomes = await submit_best(tools, ranked, guess_allowed=False)
    return describe(outcomes)


async def run_reference_agent(call, kind: str) -> str:
    """Play one interview of `kind` ("production_debugging" or "code_review") through `call(tool,
    arguments) -> structured result` (raising ToolFailed on a tool error); the final text says
    what it concluded."""
    tools = Tools(call)
    try:
        if kind == "production_debugging":
            return await production_debugging(tools)
        if kind == "code_review":
            return await code_review(tools)
    except OutOfCalls as stopped:
        return f"Stopped at the limit of {MAX_CALLS} tool calls (before {stopped}); no further diagnosis."
    raise ValueError(f"kind must be production_debugging or code_review, not {kind!r}")
