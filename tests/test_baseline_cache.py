"""BUGDRILL_BASELINE_CACHE: a finished baseline made in one state directory is copied into
another instead of run again; a failed one is never shared."""

import pytest

from sandbox.baselines import BaselineFailed, baseline
from sandbox.training import TrainingRequest, load_training, training_data


def fake_codebase(root, script):
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "base_train.py").write_text(script)
    return root


def in_state(monkeypatch, state):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(state))


def test_a_second_state_directory_copies_the_finished_baseline_instead_of_running_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_BASELINE_CACHE", str(tmp_path / "cache"))
    codebase = fake_codebase(tmp_path / "codebase", "import os\nprint('step 00001/00001 | loss: 1.5 | pid:', "
                                                    "os.getpid())\n")
    request = TrainingRequest(steps=1)
    in_state(monkeypatch, tmp_path / "a")
    first = baseline(codebase, request)
    in_state(monkeypatch, tmp_path / "b")
    second = baseline(codebase, request)
    assert second.id == first.id and second.state == "finished"
    assert load_training(second.id).stages == first.stages  # readable from the second state directory
    assert training_data(second).stdout == training_data(first).stdout  # the same process's output, not a rerun
    assert (tmp_path / "b" / "runs" / first.stages[0]).is_dir()


def test_a_failed_baseline_is_not_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_BASELINE_CACHE", str(tmp_path / "cache"))
    codebase = fake_codebase(tmp_path / "codebase", "import sys\nsys.exit(3)\n")
    for state in ("a", "b"):
        in_state(monkeypatch, tmp_path / state)
        with pytest.raises(BaselineFailed):
            baseline(codebase, TrainingRequest(steps=1))
    assert not list((tmp_path / "cache").glob("*.json"))
