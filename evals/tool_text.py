"""Reading a bugdrill tool's text result back into the fields an agent acts on.

An agent inside Inspect sees what a model sees: the text of a tool's result, never its
structured content (Inspect's MCP tools pass only the content on). The reference agent, on
both of its paths (`-T agent=reference` and `--model bugdrill/rulebook`), and the adversary
therefore read the text the server writes for reading (server/text.py), with nothing a model
could not read there too. This module knows how that text is laid out for the tools they
act on; tests/test_tool_text.py checks it against the server's renderers.

Standard library only: like evals/reference_agent.py, it must not reach the catalogue, the
server or the sandbox.
"""

import re

FENCE = re.compile(r"^(`{3,})\w*$")


def headed_blocks(text):
    """[(the line above the block, its contents)] of the text's fenced blocks, in order; lines
    inside a block are never read as anything but its contents."""
    found, closing, above, current, previous = [], None, "", [], ""
    for line in text.split("\n"):
        if closing is None:
            match = FENCE.match(line)
            if match:
                closing, above, current = match.group(1), previous, []
            previous = line
        elif line == closing:
            found.append((above, "\n".join(current)))
            closing = None
        else:
            current.append(line)
    return found


def blocks(text):
    return [contents for _, contents in headed_blocks(text)]


def read_excerpt(text):
    head = text.split("\n", 1)[0]
    if head.endswith(" is empty (0 lines)."):
        return {"path": head.removesuffix(" is empty (0 lines)."), "first_line": 1, "last_line": 0,
                "total_lines": 0, "truncated": False, "code": ""}
    path, _, rest = head.rpartition(": lines ")
    first, last, total = map(int, re.match(r"(\d+)-(\d+) of (\d+)", rest).groups())
    return {"path": path, "first_line": first, "last_line": last, "total_lines": total,
            "truncated": "cut at the per-call line limit" in rest, "code": blocks(text)[0]}


WINDOW = re.compile(r"^(.+), lines (\d+)-(\d+):$")


def read_snippet(text):
    windows = [(WINDOW.match(above), code) for above, code in headed_blocks(text)]
    return {"snippets": [{"path": m.group(1), "first_line": int(m.group(2)), "last_line": int(m.group(3)),
                          "code": code} for m, code in windows if m]}


MATCH_ROW = re.compile(r"^(.+?):(\d+): (.*)$")


def read_search(text):
    rows = blocks(text)[0].split("\n") if blocks(text) else []
    matches = [MATCH_ROW.match(row) for row in rows]
    return {"matches": [{"path": m.group(1), "line": int(m.group(2)), "text": m.group(3)} for m in matches if m],
            "truncated": "there are more" in text.split("\n", 1)[0]}


RUN_HEAD = re.compile(r"^Run (\S+): (\S+) after")
SEEN = re.compile(r"^What was seen against the pristine baseline:\n(.*?)\n\nSymptom classes: (.*)$", re.S | re.M)


def read_run(text):
    head = RUN_HEAD.match(text)
    seen = SEEN.search(text)
    symptoms = seen.group(2).split("\n", 1)[0]
    return {"run_id": head.group(1), "state": head.group(2), "summary": seen.group(1),
            "symptoms": [] if symptoms == "none" else symptoms.split(", ")}


def read_view(text):
    return {"text": blocks(text)[0]}


DIAGNOSIS = re.compile(r"^Location (right|wrong), cause (right|wrong): (found|not found)", re.M)


def read_diagnosis(text):
    match = DIAGNOSIS.search(text)
    return {"message": text.split("\n", 1)[0], "location_right": match.group(1) == "right",
            "cause_right": match.group(2) == "right", "found": match.group(3) == "found"}


def read_verification(text):
    message = text.split("\n", 1)[0]
    return {"fixed": bool(re.match(r"Fixed\b", message)), "message": message}


def read_file_list(text):
    found = blocks(text)
    return {"files": found[0].split("\n") if found else []}


READERS = {
    "read_file": read_excerpt,
    "get_snippet": read_snippet,
    "search_code": read_search,
    "run_training": read_run,
    "get_view": read_view,
    "submit_diagnosis": read_diagnosis,
    "verify_fix": read_verification,
    "list_files": read_file_list,
}


def read_result(tool, text):
    """The fields of `tool`'s result that its text says; {"text": text} for a tool read as prose.
    A text that does not have the expected shape raises ValueError, naming the tool."""
    reader = READERS.get(tool)
    if reader is None:
        return {"text": text}
    try:
        return reader(text)
    except (AttributeError, IndexError, ValueError) as error:
        raise ValueError(f"{tool}'s text is not laid out as server/text.py writes it ({error}): "
                         f"{text[:200]!r}") from None
