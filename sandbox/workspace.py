"""Blind workspaces: a copy of a codebase whose only git commit already contains the bug.

Nothing inside tells the bugged file apart: every file is written once, after injection, in
path order, with one shared modification time; one commit with a fixed author and the same
time; no history, no stash, no unreachable objects, no caches. The answer key (bug, variant,
the edit as a unified diff, the pristine text) goes to the state directory.
"""

import difflib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import git

from bug_catalog.registry import EDITS, EditError
from sandbox.codebase import ignored_names
from sandbox.state import answer_key_path



class WorkspaceError(Exception):
    """Bad input for a workspace operation: the message is for the user, one line."""


@dataclass
class InjectedBug:
    id: int | str  # a catalogue record's id, or a synthesized bug's (bug_synth)
    slug: str
    variant: str
    edit: str
    file: str
    diff: str
    pristine: str
    synth: dict | None = None  # a synthesized bug's facts (bug_synth/synth_bug.py); None in the catalogue


def read_codebase(codebase):
    """Every text file of a codebase as {relative path: text}, build outputs and binary files (such
    as nanochat's dev/*.png) left out: a workspace holds code."""
    files, ignored = {}, ignored_names()
    for path in sorted(Path(codebase).rglob("*")):
        relative = path.relative_to(codebase)
        if path.is_file() and not any(part in ignored or part.endswith(".pyc") for part in relative.parts):
            try:
                files[relative.as_posix()] = path.read_text()
            except UnicodeDecodeError:
                continue
    return files


def apply_variants(files, chosen):
    """Apply each (record, variant) to the in-memory files; returns the InjectedBug list. A
    synthesized bug comes as (SynthBug, its mutated text) and brings its own entry."""
    injected = []
    for record, variant in chosen:
        if isinstance(variant, str):
            injected.append(record.injected(files, variant))
            continue
        edit = EDITS[variant.edit]
        if edit.file not in files:
            raise WorkspaceError(f"the codebase has no {edit.file}, which bug {record.id} needs")
        before = files[edit.file]
        try:
            after = edit.apply(before)
        except EditError as error:
            raise WorkspaceError(f"cannot inject into {edit.file}: {error}") from None
        files[edit.file] = after
        diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                            f"a/{edit.file}", f"b/{edit.file}"))
        injected.append(InjectedBug(record.id, record.slug, variant.name, variant.edit, edit.file, diff, before))
    return injected


def check_destination(workspace):
    workspace = Path(workspace)
    if workspace.exists() and (not workspace.is_dir() or any(workspace.iterdir())):
        raise WorkspaceError(f"{workspace} already exists and is not an empty directory")


def write_tree(workspace, files, stamp):
    workspace.mkdir(parents=True, exist_ok=True)
    for relative in sorted(files):
        path = workspace / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[relative])
    for path in sorted(workspace.rglob("*"), reverse=True):
        os.utime(path, (stamp, stamp))
    os.utime(workspace, (stamp, stamp))


def commit_tree(workspace, stamp, name):
    """One commit made by git itself, so its reflog reads like any repository's first commit; its
    author and message name the codebase ("Initial import of picochat")."""
    repo = git.Repo.init(workspace, initial_branch="main")
    date = f"{stamp} +0000"
    author = git.Actor(name, f"{name}@example.com")
    env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email, "GIT_AUTHOR_DATE": date,
           "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email, "GIT_COMMITTER_DATE": date}
    repo.git.add("--all")
    repo.git.commit("--quiet", "--no-verify", "-m", f"Initial import of {name}", env=env)
    repo.close()


def create_workspace(workspace, codebase, chosen, codebase_name="builtin", seed=None, codebase_kind=None):
    """Write a blind workspace with the chosen (record, variant) pairs injected; store the key.
    codebase_name: "builtin" or the checkout as interviews name it; codebase_kind: the name of
    the codebase (sandbox/codebases) it is a checkout of."""
    workspace = Path(workspace).resolve()
    check_destination(workspace)
    files = read_codebase(codebase)
    injected = apply_variants(files, chosen)  # may fail: nothing written yet
    stamp = int(time.time())
    write_tree(workspace, files, stamp)
    commit_tree(workspace, stamp, Path(codebase).resolve().name)
    key = {"workspace": str(workspace), "codebase": codebase_name, "codebase_path": str(codebase),
           "seed": seed, "bugs": [asdict(bug) for bug in injected]}
    if codebase_kind:
        key["codebase_kind"] = codebase_kind
    path = answer_key_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(key, indent=2))
    return key


def is_pristine_copy(workspace, codebase):
    """Whether every file of the workspace (its .git aside) is byte for byte the text file of the
    pristine codebase at the same path, with none added, missing, linked or of another kind: the
    pristine code itself, which has nothing left to fix."""
    expected = read_codebase(codebase)
    seen = 0
    for path in Path(workspace).rglob("*"):
        relative = path.relative_to(workspace)
        if relative.parts[0] == ".git" or (path.is_dir() and not path.is_symlink()):
            continue
        if path.is_symlink() or not path.is_file() or relative.as_posix() not in expected:
            return False
        try:
            if path.read_bytes() != expected[relative.as_posix()].encode():
                return False
        except OSError:
            return False
        seen += 1
    return seen == len(expected)


def load_answer_key(workspace):
    path = answer_key_path(workspace)
    if not path.exists():
        raise WorkspaceError(f"{workspace} is not a workspace bugdrill made (no answer key for it)")
    return json.loads(path.read_text())


def restore_workspace(workspace):
    """Put every bugged file back to its pristine text; returns the files restored."""
    key = load_answer_key(workspace)
    restored = []
    for bug in key["bugs"]:
        (Path(workspace) / bug["file"]).write_text(bug["pristine"])
        restored.append(bug["file"])
    return restored
