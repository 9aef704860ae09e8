"""Which statements a run reaches: a mutant is measured only in the runs that execute what it
changed, as mutation-testing tools do with coverage.

The pristine checkout is run once per request with the line tracer on (sandbox/probe/
bugdrill_lines.py, every process of every stage), and the lines it executed are kept in the pool
(reach/<request digest>.json). A mutant reaches a run when, for one of the lines it changed, the
innermost statement holding that line ran (a line of its own, or of the block it heads). Where a
run's reach is unknown (its traced run did not finish, or wrote no lines) every mutant counts as
reaching it: an unknown reach never skips a run. Nothing is kept of a failed trace, so the next
build traces that run again.
"""

import ast
import difflib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

from sandbox import runner
from sandbox.codebase import copy_codebase
from sandbox.teardown_retry import again_after_teardown_abort

UNKNOWN = None


class Reach:
    """The lines each run of a pool's checkout executes, traced once per request and kept on disk."""

    def __init__(self, codebase, source, pool_root):
        self.codebase, self.source = codebase, source
        self.root = Path(pool_root) / "reach"
        self.root.mkdir(parents=True, exist_ok=True)
        self._locks, self._guard, self._known = {}, threading.Lock(), {}

    def lines(self, request):
        """{relative path: set of lines} the pristine run of `request` executes; UNKNOWN if not traced."""
        key = hashlib.sha256(request.model_dump_json().encode()).hexdigest()[:16]
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one traced run per request, however many workers want it
            if key not in self._known:
                self._known[key] = self._load_or_trace(key, request)
        return self._known[key]

    def _load_or_trace(self, key, request):
        path = self.root / f"{key}.json"
        if path.exists():
            found = json.loads(path.read_text())["lines"]
        else:
            found = traced_lines(self.codebase, self.source, request)
            if found is None:  # kept for this build only: the next build traces it again
                return UNKNOWN
            # written whole or not at all: another build may share the pool and read it
            partial = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
            partial.write_text(json.dumps({"request": json.loads(request.model_dump_json()), "lines": found}))
            partial.replace(path)
        return UNKNOWN if found is None else {name: set(numbers) for name, numbers in found.items()}


def traced_lines(codebase, source, request):
    """{path: sorted lines} over every process of every stage of one traced pristine run, or None."""
    scratch = Path(tempfile.mkdtemp(prefix="bugdrill-reach-"))
    try:
        workspace = scratch / codebase.workspace_name(source)
        copy_codebase(source, workspace)
        with runner.tracing_lines():
            training = again_after_teardown_abort(lambda: codebase.train(workspace, request, label="synth-reach"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if training.state != "finished":
        return None
    lines, files = {}, 0
    for run_id in training.stages:
        for path in sorted((runner.run_dir(run_id) / "telemetry").glob("lines-*.json")):
            files += 1
            for name, numbers in json.loads(path.read_text()).items():
                lines.setdefault(name, set()).update(numbers)
    return {name: sorted(numbers) for name, numbers in lines.items()} if files else None


def changed_lines(original, mutated):
    """Lines of `original` the mutated text replaces or removes (the line after, for an insertion)."""
    old, new = original.splitlines(), mutated.splitlines()
    lines = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            lines.update(range(i1 + 1, i2 + 1))
        elif tag == "insert":
            lines.add(min(i1 + 1, len(old)))
    return lines


@functools.lru_cache(maxsize=64)
def statement_spans(text):
    """(first line, last line) of every statement of a file; a decorated definition's starts at
    its first decorator (the decorators run when the definition does)."""
    spans = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.stmt):
            decorators = getattr(node, "decorator_list", None) or [node]
            spans.append((min(d.lineno for d in [node, *decorators]), node.end_lineno))
    return tuple(spans)


def runs_reaching(reach, file, original, mutated, requests, most):
    """The first `most` of `requests` (in their order) whose pristine run reaches the mutated code."""
    statements = changed_statements(original, mutated)
    chosen = []
    for request in requests:
        if len(chosen) == most:
            break
        lines = reach.lines(request)
        if lines is UNKNOWN or runs_any(statements, lines.get(file, ())):
            chosen.append(request)
    return chosen


def changed_statements(original, mutated):
    """(first, last) line of the innermost statement holding each changed line; None for a changed
    line outside every statement (a comment, a blank line), which counts as run."""
    spans = statement_spans(original)
    found = []
    for line in sorted(changed_lines(original, mutated)):
        holding = [span for span in spans if span[0] <= line <= span[1]]
        found.append(min(holding, key=lambda span: span[1] - span[0]) if holding else None)
    return found


def runs_any(statements, executed):
    return any(span is None or any(span[0] <= number <= span[1] for number in executed) for span in statements)


def reaches(original, mutated, executed):
    """Whether a run that executed `executed` (lines of the original file) runs the mutated code."""
    return runs_any(changed_statements(original, mutated), executed)
