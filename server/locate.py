"""Where an injected bug sits in its bugged file: the file's text, the lines its diff changed, and the
functions around them. Everything is derived from the answer key (the pristine text and the diff),
so what the candidate has done to the workspace since does not move the target."""

import ast
import re

from bug_catalog.registry import EDITS

HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _hunks(diff):
    """[(old_start, new_start, [diff lines])] of a unified diff made by difflib."""
    hunks = []
    for line in diff.splitlines(keepends=True):
        match = HUNK.match(line)
        if match:
            hunks.append((int(match.group(1)), int(match.group(3)), []))
        elif hunks and line[:1] in (" ", "-", "+"):
            hunks[-1][2].append(line)
    return hunks


def bugged_text(bug):
    """The bugged file's text for one answer-key entry: the pristine text with its diff applied
    (or, if the diff does not fit, the registered edit applied again)."""
    before = bug["pristine"].splitlines(keepends=True)
    out, position = [], 0
    try:
        for old_start, _, lines in _hunks(bug["diff"]):
            start = max(old_start - 1, 0) if any(line[0] != "+" for line in lines) else old_start
            out.extend(before[position:start])
            position = start
            for line in lines:
                tag, text = line[0], line[1:]
                if tag == "+":
                    out.append(text)
                    continue
                if position >= len(before) or before[position].rstrip("\r\n") != text.rstrip("\r\n"):
                    raise ValueError("diff does not fit")
                if tag == " ":
                    out.append(before[position])
                position += 1
        out.extend(before[position:])
        return "".join(out)
    except ValueError:
        import bug_catalog.targets  # noqa: F401  (registers the edits of other codebases, e.g. nanochat/...)

        return EDITS[bug["edit"]].apply(bug["pristine"])


def anchors(diff):
    """Line numbers in the bugged file that mark the change: every added line and, where lines were
    only deleted, the lines on both sides of the deletion point."""
    marks = set()
    for _, new_start, lines in _hunks(diff):
        number, deleting = new_start, False
        for line in lines + [" "]:
            tag = line[0]
            if tag == "-":
                deleting = True
                continue
            if tag == "+":
                marks.add(number)
                number += 1
                deleting = False
                continue
            if deleting:
                marks.update(n for n in (number - 1, number) if n >= 1)
                deleting = False
            number += 1
    return sorted(marks)


def functions(source):
    """[(qualified name, first line, last line)] of every function in a Python source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    found.append((name, first, child.end_lineno))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def enclosing_functions(source, lines):
    """Qualified names of the innermost functions that contain any of the lines."""
    spans = functions(source)
    names = set()
    for line in lines:
        inside = [s for s in spans if s[1] <= line <= s[2]]
        if inside:
            names.add(min(inside, key=lambda s: s[2] - s[1])[0])
    return names
