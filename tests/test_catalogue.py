"""Every bug in the catalogue, every variant: it injects into a fresh blind workspace of the
built-in codebase, the result compiles, the change is small and adds no comment, the history
is one commit, and the bug's behavioural check fails; on pristine every check passes.

The checks run in one batch (bug_catalog.checking.run_checks_each: the framework loaded once,
a forked process per workspace): the default suite runs each bug's check on its first variant (a
record's variants share its check), except the three checks that train on two ranks, which it
runs on the pristine code only (the bugged copies add about a minute on 2 cores);
BUGDRILL_ALL_VARIANTS=1 runs every check on all 101 variants."""

import os

import git
import pytest

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks_each
from bug_catalog.validate import edit_problems
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.workspace import create_workspace

CATALOG = load_catalog()
VARIANTS = [(record, variant) for record in CATALOG.values() for variant in record.variants]
EVERY_CHECK = os.environ.get("BUGDRILL_ALL_VARIANTS") == "1"


# torchrun with two ranks, each check: seen failing on its bug with BUGDRILL_ALL_VARIANTS=1
TWO_RANK_CHECKS = {"loss-not-averaged", "lr-times-world-size", "corpus-barrier-missing"}


def check_runs_by_default(record, variant):
    return EVERY_CHECK or (variant is record.variants[0] and record.check not in TWO_RANK_CHECKS)


def test_the_catalogue_has_no_duplicate_slugs_and_every_record_has_variants():
    slugs = [r.slug for r in CATALOG.values()]
    assert len(slugs) == len(set(slugs))
    assert all(r.variants for r in CATALOG.values())


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """{"pristine": every check on the pristine code, (bug id, variant): its check on that variant}
    for the variants whose check runs by default, all in one batch."""
    root = tmp_path_factory.mktemp("checked")
    chosen = [(record, variant) for record, variant in VARIANTS if check_runs_by_default(record, variant)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BUGDRILL_STATE_DIR", str(root / "state"))
        create_workspace(root / "pristine", PICOCHAT_DIR, [])
        jobs = [(root / "pristine", sorted({r.check for r in CATALOG.values()}))]
        for record, variant in chosen:
            workspace = root / f"{record.id}-{variant.name}"
            create_workspace(workspace, PICOCHAT_DIR, [(record, variant)])
            jobs.append((workspace, [record.check]))
        results = run_checks_each(jobs, timeout=900)
    return {"pristine": results[0], **{(r.id, v.name): result[r.check] for (r, v), result in zip(chosen, results[1:])}}


def test_every_check_passes_on_the_pristine_codebase(checked):
    failing = {name: r["detail"] for name, r in checked["pristine"].items() if not r["passed"]}
    assert not failing


@pytest.mark.parametrize("record, variant", VARIANTS, ids=[f"{r.id}-{v.name}" for r, v in VARIANTS])
def test_variant_injects_blindly_and_its_check_fails(record, variant, tmp_path, monkeypatch, checked):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    assert edit_problems(variant.edit) == []
    workspace = tmp_path / "ws"
    create_workspace(workspace, PICOCHAT_DIR, [(record, variant)])
    repo = git.Repo(workspace)
    assert len(list(repo.iter_commits())) == 1
    assert not repo.is_dirty(untracked_files=True)
    if not check_runs_by_default(record, variant):
        return  # its check runs on this variant with BUGDRILL_ALL_VARIANTS=1
    assert not checked[record.id, variant.name]["passed"], "the check passes with the bug present"
