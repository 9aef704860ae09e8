"""The ledger: a pool measured in one state directory is drawn from, and built on, in another that
starts empty, with the measurements read from the project's ledger and every mutant made again by
the operators; the ledger holds no mutated text, family, file or line; a row whose mutant the operators do not make is
not taken; a ledger is taken once, and again when it grows. Real builds of the classifier fixture."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLASSIFIER = REPO / "tests" / "fixtures" / "classifier"
PLUGIN = REPO / "tests" / "fixtures" / "classifier_codebase.py"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """(codebase, checkout, ledger folder, the first machine's pool) after a real 6-mutant build
    whose rows were saved to a ledger."""
    root = tmp_path_factory.mktemp("ledger")
    checkout = root / "classifier"
    shutil.copytree(CLASSIFIER, checkout, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    patch = pytest.MonkeyPatch()
    patch.setenv("BUGDRILL_STATE_DIR", str(root / "first-machine"))
    patch.setenv("BUGDRILL_CODEBASES", str(PLUGIN))
    patch.setenv("BUGDRILL_SYNTH_LEDGERS", str(root / "ledgers"))
    patch.setenv("OMP_NUM_THREADS", "1")
    from bug_synth import ledger
    from bug_synth.build import build
    from sandbox import codebases

    codebase = codebases.recognise(checkout)
    report = build(codebase, checkout, budget_minutes=10, steps=20, limit=6, scenarios=0)
    assert report.measured == 6 and report.kept >= 1
    path, rows = ledger.save(report.pool)
    assert rows == 6 and path.parent == root / "ledgers"
    yield codebase, checkout, root, report.pool
    patch.undo()


def another_machine(monkeypatch, root, name):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(root / name))


def test_a_fresh_state_directory_takes_the_measured_pool_from_the_ledger(measured, monkeypatch):
    from bug_synth.pool import Pool

    codebase, checkout, root, first = measured
    another_machine(monkeypatch, root, "second-machine")
    second = Pool(codebase, checkout)
    assert second.root != first.root
    assert second.tried() == {key: {k: v for k, v in row.items() if k != "training"}
                              for key, row in first.tried().items()}
    assert [asdict(bug) for bug in second.kept()] == [asdict(bug) for bug in sorted(first.kept(), key=lambda b: b.id)]
    for bug in first.kept():
        assert second.text(bug.id) == first.text(bug.id)
    bug, text = second.pick(seed=3)
    assert text == first.text(bug.id)


def test_the_ledger_holds_measurements_and_no_mutated_text(measured):
    from bug_synth import ledger

    _, _, root, first = measured
    written = ledger.path_of(first).read_text()
    rows = [json.loads(line) for line in written.splitlines()]
    for row in rows:
        assert set(row) <= set(ledger.MEASURED_FIELDS) | {"kept"}  # no family, file or line
        assert set(row.get("kept", {})) <= set(ledger.EVIDENCE_FIELDS)
    for bug in first.kept():
        changed = first.text(bug.id).splitlines()[bug.line - 1].strip()
        assert bug.after in changed and changed not in written
        assert bug.cause not in written


def test_a_build_on_the_second_machine_measures_only_what_the_ledger_lacks(measured, monkeypatch):
    from bug_synth.build import build
    from bug_synth.pool import Pool

    codebase, checkout, root, first = measured
    another_machine(monkeypatch, root, "third-machine")
    report = build(codebase, checkout, budget_minutes=10, steps=20, limit=1, scenarios=0)
    assert report.measured == 1
    tried = Pool(codebase, checkout).tried()
    assert len(tried) == 7 and set(first.tried()) < set(tried)


def test_a_row_the_operators_do_not_make_is_not_taken_and_a_grown_ledger_is_taken_again(measured, monkeypatch):
    from bug_synth import build as building
    from bug_synth import ledger
    from bug_synth.pool import Pool

    codebase, checkout, root, first = measured
    path = ledger.path_of(first)
    original = path.read_text()
    forged = {"id": "s00000000000", "family": "sign-flipped", "file": "train.py", "line": 1, "outcome": "kept",
              "tried_in": ["default"], "seconds": 1.0,
              "kept": {"request": {}, "commands": [], "symptoms": ["crashed"], "summary": "forged", "departs_at": None,
                       "steps": 1, "difficulty": "easy", "evidence": "forged"}}
    try:
        another_machine(monkeypatch, root, "fourth-machine")
        assert len(Pool(codebase, checkout).tried()) == 6
        made = []
        real = building.candidate_mutants
        monkeypatch.setattr(building, "candidate_mutants", lambda *a, **k: made.append(1) or real(*a, **k))
        assert len(Pool(codebase, checkout).tried()) == 6 and made == []  # taken once: not made again
        path.write_text(original + json.dumps(forged) + "\n")
        pool = Pool(codebase, checkout)
        assert made == [1]  # the ledger grew: its new row was looked for among the mutants
        assert "s00000000000" not in pool.tried() and all(bug.id != "s00000000000" for bug in pool.kept())
    finally:
        path.write_text(original)
