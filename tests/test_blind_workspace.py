"""Plays the candidate: after `inject random`, tries every way of finding the answer from
inside the workspace, and finds nothing that singles out the bugged file."""

import json
import os
import subprocess
import sys

import pytest

from bug_catalog.catalog import load_catalog
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.state import answer_key_path
from sandbox.workspace import read_codebase


def git(workspace, *args):
    return subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module", params=[3, 11, 29])
def injected(request, tmp_path_factory):
    """A workspace made by `bugdrill inject random`, and its answer key (read from the state dir)."""
    root = tmp_path_factory.mktemp(f"blind-{request.param}")
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(root / "state")}
    workspace = root / "ws"
    subprocess.run([sys.executable, "-m", "server.cli", "inject", "random", "--workspace", str(workspace),
                    "--seed", str(request.param)], env=env, check=True, capture_output=True)
    key = json.loads(next((root / "state" / "keys").glob("*.json")).read_text())
    return workspace, key


def test_history_is_one_commit_with_nothing_else_to_dig_up(injected):
    workspace, _ = injected
    assert len(git(workspace, "rev-list", "--all").split()) == 1
    assert git(workspace, "diff") == "" and git(workspace, "diff", "--cached") == ""
    assert git(workspace, "status", "--porcelain") == ""
    assert len(git(workspace, "reflog").splitlines()) == 1
    assert git(workspace, "stash", "list") == ""
    assert git(workspace, "fsck", "--unreachable", "--no-reflogs", "--no-progress").strip() == ""
    # the one commit adds every file; `git log -p` is the whole codebase, not a diff of the bug
    assert len(git(workspace, "show", "--name-only", "--format=").split()) == len(read_codebase(PICOCHAT_DIR))


def test_file_times_and_index_stat_data_do_not_single_out_a_file(injected):
    workspace, _ = injected
    files = [p for p in workspace.rglob("*") if ".git" not in p.relative_to(workspace).parts and p.is_file()]
    assert len({p.stat().st_mtime_ns for p in files}) == 1
    index = git(workspace, "ls-files", "--debug")
    mtimes = {line.split()[1] for line in index.splitlines() if line.strip().startswith("mtime:")}
    assert len(mtimes) == 1


def test_no_stray_files_caches_or_backups(injected):
    workspace, _ = injected
    names = [p.name for p in workspace.rglob("*") if ".git" not in p.relative_to(workspace).parts]
    assert not [n for n in names if n == "__pycache__" or n.endswith((".orig", ".rej", "~", ".bak", ".pyc"))]
    assert sorted(read_codebase(workspace)) == sorted(read_codebase(PICOCHAT_DIR))


def test_no_comment_or_name_gives_the_bug_away(injected):
    workspace, key = injected
    record = load_catalog()[key["bugs"][0]["id"]]
    text = "\n".join(read_codebase(workspace).values()).lower()
    pristine = "\n".join(read_codebase(PICOCHAT_DIR).values()).lower()
    for giveaway in ("bug", "inject", record.slug, record.title.lower()):
        assert text.count(giveaway) == pristine.count(giveaway), giveaway
    # an edit never adds a comment; it may take away one that narrated the line it changed
    assert sum(line.strip().startswith("#") for line in text.splitlines()) <= \
        sum(line.strip().startswith("#") for line in pristine.splitlines())


def test_the_answer_key_is_not_under_the_workspace(injected, monkeypatch):
    workspace, key = injected
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(workspace.parent / "state"))
    everything = "".join(p.read_text(errors="replace") for p in workspace.rglob("*") if p.is_file())
    assert key["bugs"][0]["diff"] not in everything
    assert workspace.resolve() not in answer_key_path(workspace).resolve().parents
