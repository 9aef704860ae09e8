"""The text content of a tool's result: what a reader of the result sees.

Most LLM clients (Inspect's MCP tools among them) hand the model a result's text and nothing
else; the structured content is for programs. So the text is written to be read: code as
numbered lines in a fenced block, lists of records as aligned columns, a few short sentences;
never the JSON of the structured result.

`render` covers any result model: a generic renderer makes a line per field, a table per list
of flat records and a fenced block per multi-line text. Where a kind reads better otherwise (a
file read, a code-review snippet, a view, a run report, a verdict), a renderer of its own says
some fields in sentences, and the generic renderer adds every field it did not say, so a field
is never left out, and a role's extra fields (the interviewer's) are shown without a renderer
knowing them. evals/tool_text.py reads these texts back as the reference agent's eyes: a change
of wording here is checked by tests/test_tool_text.py.
"""

import re
from datetime import datetime, timezone

from pydantic import BaseModel

TIME_FIELDS = {"time", "started"}  # seconds since the epoch: shown as a UTC time
LANGUAGES = {".py": "python", ".md": "markdown", ".toml": "toml", ".json": "json", ".sh": "bash"}
INLINE_LIST_CHARS = 100  # a list of short values longer than this is shown one per line


# --- pieces -------------------------------------------------------------------------------

def label(name):
    """A field's name as words; a unit suffix in brackets: time_to_find_s -> "time to find (s)"."""
    words = name.replace("_", " ")
    return words[:-2] + " (s)" if words.endswith(" s") else words


def scalar(value, name=""):
    """One value as a reader writes it: yes/no, none, a UTC time, a number without float noise."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and name in TIME_FIELDS:
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def short(value, name=""):
    """A value that fits one line: a scalar, or a list of scalars joined with commas."""
    if isinstance(value, list):
        return ", ".join(scalar(item) for item in value) or "none"
    return scalar(value, name)


def is_scalar(value):
    return value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and "\n" not in value)


def fence(text, language=""):
    """A fenced block that holds `text` whatever it contains: the fence is longer than any run of
    backticks inside (CommonMark's rule)."""
    text = text.rstrip("\n")  # a final newline would show as an empty last line
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return [ticks + language, *text.split("\n"), ticks]


def language_of(path):
    return next((lang for suffix, lang in LANGUAGES.items() if str(path).endswith(suffix)), "")


def block_language(name, text):
    if name == "diff" or text.startswith("--- a/"):
        return "diff"
    return "text"


def table(rows, columns):
    """Aligned columns with a header of labels; numbers right-aligned, the last column unpadded."""
    cells = [[short(row.get(c) if isinstance(row, dict) else getattr(row, c), c) for c in columns] for row in rows]
    header = [label(c) for c in columns]
    widths = [max(len(x) for x in column) for column in zip(header, *cells)]
    numeric = [all(re.fullmatch(r"-?[\d.e+-]+|none", line[i]) for line in cells) for i in range(len(columns))]

    def line(values):
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(out[:-1] + [values[-1]]).rstrip()

    return [line(header), *(line(values) for values in cells)]


def flat(item):
    """A record that fits one table row: every field a one-line value or a list of them."""
    values = item.values() if isinstance(item, dict) else (getattr(item, f) for f in type(item).model_fields)
    return all(is_scalar(v) or (isinstance(v, list) and all(is_scalar(x) for x in v)) for v in values)


def columns_of(items):
    if isinstance(items[0], BaseModel):
        return list(type(items[0]).model_fields)
    return list(dict.fromkeys(key for item in items for key in item))


# --- the generic renderer -------------------------------------------------------------------

def fields(value, skip=()):
    """[(name, value)] of a model (declaration order) or a dict, leaving out `skip`."""
    if isinstance(value, BaseModel):
        return [(name, getattr(value, name)) for name in type(value).model_fields if name not in skip]
    return [(name, item) for name, item in value.items() if name not in skip]


def generic(value, skip=()):
    """Lines for every field of a model or dict but `skip`."""
    lines = []
    for name, item in fields(value, skip):
        lines += field_lines(name, item)
    return lines


def field_lines(name, value):
    if isinstance(value, BaseModel) and type(value).__name__ in ONE_LINE:
        return [ONE_LINE[type(value).__name__](value)]
    if is_scalar(value):
        return [f"{label(name)}: {scalar(value, name)}"]
    if isinstance(value, str):
        return [f"{label(name)}:", *fence(value, block_language(name, value))]
    if isinstance(value, (BaseModel, dict)):
        if not value:
            return [f"{label(name)}: none"]
        if isinstance(value, dict) and flat(value):
            return [f"{label(name)}: " + "; ".join(f"{label(k)}: {short(v, k)}" for k, v in value.items())]
        return [f"{label(name)}:", *indent(generic(value))]
    return list_lines(name, value)


def list_lines(name, items):
    if not items:
        return [f"{label(name)}: none"]
    if all(is_scalar(item) for item in items):
        inline = ", ".join(scalar(item) for item in items)
        if len(inline) <= INLINE_LIST_CHARS:
            return [f"{label(name)}: {inline}"]
        return [f"{label(name)}:", *(f"- {scalar(item)}" for item in items)]
    if all(isinstance(item, str) for item in items):
        return [f"{label(name)}:", *(line for item in items for line in bullet(item))]
    if all(isinstance(item, (BaseModel, dict)) for item in items) and all(flat(item) for item in items):
        return [f"{label(name)} ({len(items)}):", *indent(table(items, columns_of(items)))]
    lines = []
    for number, item in enumerate(items, 1):
        lines += ["", f"{label(name)} {number} of {len(items)}:", *indent(generic(item) if isinstance(
            item, (BaseModel, dict)) else [scalar(item)])]
    return lines


def bullet(text):
    first, *rest = text.split("\n")
    return [f"- {first}", *(f"  {line}" for line in rest)]


def indent(lines):
    """Nested fields two spaces in; a fenced block keeps its own lines as they are (code's
    indentation is the code's)."""
    out, in_block = [], None
    for line in lines:
        opening = re.match(r"^(`{3,})", line)
        if in_block is None and opening:
            in_block = opening.group(1)
            out.append(line)
        elif in_block is not None:
            out.append(line)
            if line == in_block:
                in_block = None
        else:
            out.append(f"  {line}" if line else line)
    return out


# --- renderers of their own: (lines, the fields they said) ----------------------------------

def clock_line(clock):
    return f"clock: {clock.note}"


def code_window(path, first, last, code):
    return [f"{path}, lines {first}-{last}:", *fence(code, language_of(path))]


def file_excerpt(r):
    if r.total_lines == 0:
        head = [f"{r.path} is empty (0 lines)."]
    else:
        head = [f"{r.path}: lines {r.first_line}-{r.last_line} of {r.total_lines}"
                + (f" (cut at the per-call line limit; read on with start_line={r.last_line + 1})"
                   if r.truncated else "") + "."]
    code = fence(r.code, language_of(r.path)) if r.code else []
    return head + code, {"path", "first_line", "last_line", "total_lines", "truncated", "code"}


def snippet(r):
    lines = []
    for window in r.snippets:
        lines += code_window(window.path, window.first_line, window.last_line, window.code)
    return lines, {"snippets"}


def view_text(r):
    return [f"Run {r.run_id}, view {r.view}:", *fence(r.text, "text")], {"run_id", "view", "text"}


def run_report(r):
    symptoms = ", ".join(r.symptoms) if r.symptoms else "none"
    lines = [f"Run {r.run_id}: {r.state} after {scalar(r.wall_s)} s ({r.message}).", "",
             "What was seen against the pristine baseline:", r.summary, "",
             f"Symptom classes: {symptoms}", "", "Commands, stage by stage:",
             *fence("\n".join(f"$ {command}" for command in r.commands), "bash"),
             f"Views (get_view): {', '.join(r.views)}"]
    return lines, {"run_id", "state", "message", "commands", "wall_s", "symptoms", "summary", "views"}


def run_list(r):
    if not r.runs:
        return ["No runs yet: run_training makes one."], {"runs"}
    lines = []
    for run in r.runs:
        steps = "default steps" if run.steps is None else f"{run.steps} steps"
        flags = " ".join(run.args) if run.args else "no extra flags"
        lines += [f"{run.run_id}: {run.state}; scenario {run.scenario}, {steps}, {flags}.", f"  {run.summary}", ""]
    return lines[:-1], {"runs"}


def search_result(r):
    found = f"{r.count} match{'es' if r.count != 1 else ''} for {r.pattern!r} in {r.files_searched} file(s) searched"
    found += " (stopped at max_results: there are more)." if r.truncated else "."
    rows = [f"{m.path}:{m.line}: {m.text}" for m in r.matches]
    return [found, *(fence("\n".join(rows), "text") if rows else [])], \
        {"pattern", "count", "truncated", "files_searched", "matches"}


def place(path):
    return "the workspace" if path in (".", "./", "") else path


def file_list(r):
    head = f"{len(r.files)} file(s) in {place(r.path)}" + (" (the list is cut: give a folder)." if r.truncated else ".")
    return [head, *(fence("\n".join(r.files), "text") if r.files else [])], {"path", "files", "truncated"}


def edit_result(r):
    done = "Created" if r.created else "Edited"
    return [f"{done} {r.path}. The diff of this edit:", *fence(r.diff or "(no change)", "diff")], \
        {"path", "created", "diff"}


def verification(r):
    verdict = "Fixed" if r.fixed else "Not fixed"
    first = r.message if re.match(rf"{verdict}\b", r.message) else f"{verdict}. {r.message}"
    left = "no limit" if r.verifies_left is None else f"{r.verifies_left} left"
    return [first, f"verify_fix calls: {r.verifies_used} used, {left}."], \
        {"fixed", "message", "verifies_used", "verifies_left"}


def diagnosis(r):
    def right(flag):
        return "right" if flag else "wrong"

    return [r.message,
            f"Location {right(r.location_right)}, cause {right(r.cause_right)}: "
            f"{'found' if r.found else 'not found'}, score {scalar(r.score)}.",
            f"Diagnoses: {r.diagnoses_submitted} submitted, {r.diagnoses_left} left."], \
        {"message", "location_right", "cause_right", "found", "score", "diagnoses_submitted", "diagnoses_left"}


def hint(r):
    return [f"Hint {r.number} of {r.of}:", *(line for h in r.hints for line in bullet(h))], {"number", "of", "hints"}


ONE_LINE = {"Clock": clock_line}  # nested models said in one line wherever they occur
# by class name, so a role's richer model (VerificationFull) finds its base's renderer
SPECIFIC = {
    "FileExcerpt": file_excerpt,
    "Snippet": snippet,
    "ViewText": view_text,
    "RunReport": run_report,
    "RunList": run_list,
    "SearchResult": search_result,
    "FileList": file_list,
    "EditResult": edit_result,
    "Verification": verification,
    "DiagnosisResult": diagnosis,
    "HintResult": hint,
}


def renderer_of(model):
    for cls in type(model).__mro__:
        if cls.__name__ in SPECIFIC:
            return SPECIFIC[cls.__name__]
    return None


def render(model: BaseModel) -> str:
    """The text content of a result: its own renderer's sentences, then every other field."""
    specific = renderer_of(model)
    lines, said = specific(model) if specific else ([], set())
    rest = generic(model, skip=said)
    if lines and rest:
        lines.append("")
    return "\n".join(lines + rest).strip("\n")
