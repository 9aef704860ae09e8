"""Validate catalogue entries against a codebase, and measure what their variants do.

    python -m bug_catalog.validate [ID ...]                 # all bugs when no id is given
    python -m bug_catalog.validate ID --measure [FLAGS...]  # also train pristine + each variant

For each bug: the check passes on the pristine codebase; every variant's edit applies,
leaves valid Python, changes one small place and adds no comment, and makes the check fail.
--measure runs scripts.base_train (tiny preset, 100 steps unless FLAGS say otherwise) on the
pristine copy and on each variant and prints the lines a symptom is read from.
"""

import argparse
import ast
import difflib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks_each
from bug_catalog.registry import EDITS
from sandbox.codebase import copy_codebase
from sandbox.codebases.picochat import PICOCHAT_DIR

MAX_CHANGED_LINES = 8


def comments(source):
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [t.string for t in tokens if t.type == tokenize.COMMENT]


def edit_problems(edit_name, codebase=PICOCHAT_DIR):
    """What is wrong with applying this edit to the codebase (empty when nothing is)."""
    edit = EDITS[edit_name]
    before = (codebase / edit.file).read_text()
    after = edit.apply(before)
    problems = []
    if after == before:
        problems.append("the edit changed nothing")
    try:
        ast.parse(after)
    except SyntaxError as error:
        problems.append(f"not valid Python: {error}")
    diff = [l for l in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    if len(diff) > MAX_CHANGED_LINES:
        problems.append(f"{len(diff)} changed lines (at most {MAX_CHANGED_LINES})")
    if len(comments(after)) > len(comments(before)):
        problems.append("the edit adds a comment")
    return problems


def injected_copy(edit_name):
    workspace = copy_codebase(PICOCHAT_DIR, Path(tempfile.mkdtemp(prefix="bugdrill-validate-")) / "ws")
    if edit_name:
        target = workspace / EDITS[edit_name].file
        target.write_text(EDITS[edit_name].apply(target.read_text()))
    return workspace


def validate(record):
    problems = {variant.name: edit_problems(variant.edit) for variant in record.variants}
    checked = [variant for variant in record.variants if not problems[variant.name]]
    # the pristine copy and every checkable variant in one batch: our own code, loaded once
    jobs = [(injected_copy(None), [record.check])] + [(injected_copy(v.edit), [record.check]) for v in checked]
    pristine, *bugged = [result[record.check] for result in run_checks_each(jobs)]
    failures = [] if pristine["passed"] else [f"check fails on pristine: {pristine['detail']}"]
    for variant, result in zip(checked, bugged):
        if result["passed"]:
            problems[variant.name].append("the check passes with the bug present")
    return failures + [f"variant {name}: {p}" for name, found in problems.items() for p in found]


def measure(record, flags):
    flags = flags or ["--preset=tiny", "--num_iterations=100", "--num_samples=0"]
    interesting = re.compile(r"^(step 000(10|50|100)/|step \d+ \| val|summary|Traceback|\w+Error)")
    for name, edit in [("pristine", None)] + [(v.name, v.edit) for v in record.variants]:
        workspace = injected_copy(edit)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PICOCHAT_BASE_DIR": str(workspace / ".picochat")}
        run = subprocess.run([sys.executable, "-m", "scripts.base_train", *flags], cwd=workspace, env=env,
                             capture_output=True, text=True, timeout=600)
        print(f"--- {name} (exit {run.returncode})")
        for line in (run.stdout + run.stderr).splitlines():
            if interesting.match(line):
                print("   ", line)
        shutil.rmtree(workspace.parent, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", type=int)
    parser.add_argument("--measure", action="store_true")
    args, flags = parser.parse_known_args()
    catalog = load_catalog()
    ok = True
    for bug_id in args.ids or sorted(catalog):
        record = catalog[bug_id]
        failures = validate(record)
        ok &= not failures
        print(f"{bug_id:2d} {record.slug}: {'ok' if not failures else 'FAILED'}")
        for failure in failures:
            print(f"     {failure}")
        if args.measure:
            measure(record, flags)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
