"""Every bug in the catalogue, every variant: it injects into a fresh blind workspace of the
built-in codebase, the result compiles, the change is small and adds no comment, the history
is one commit, and the bug's behavioural check fails; on pristine every check passes."""

import git
import pytest

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks
from bug_catalog.validate import edit_problems
from sandbox.codebase import PICOCHAT_DIR
from sandbox.workspace import create_workspace

CATALOG = load_catalog()
VARIANTS = [(record, variant) for record in CATALOG.values() for variant in record.variants]


def test_the_catalogue_has_no_duplicate_slugs_and_every_record_has_variants():
    slugs = [r.slug for r in CATALOG.values()]
    assert len(slugs) == len(set(slugs))
    assert all(r.variants for r in CATALOG.values())


def test_every_check_passes_on_the_pristine_codebase(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    create_workspace(tmp_path / "ws", PICOCHAT_DIR, [])
    checks = sorted({r.check for r in CATALOG.values()})
    results = run_checks(tmp_path / "ws", checks, timeout=900)
    failing = {name: r["detail"] for name, r in results.items() if not r["passed"]}
    assert not failing


@pytest.mark.parametrize("record, variant", VARIANTS, ids=[f"{r.id}-{v.name}" for r, v in VARIANTS])
def test_variant_injects_blindly_and_its_check_fails(record, variant, tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    assert edit_problems(variant.edit) == []
    workspace = tmp_path / "ws"
    create_workspace(workspace, PICOCHAT_DIR, [(record, variant)])
    repo = git.Repo(workspace)
    assert len(list(repo.iter_commits())) == 1
    assert not repo.is_dirty(untracked_files=True)
    result = run_checks(workspace, [record.check])[record.check]
    assert not result["passed"], "the check passes with the bug present"
