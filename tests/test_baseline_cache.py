"""BUGDRILL_BASELINE_CACHE: a finished baseline made in one state directory is copied into
another instead of run again; a failed one is never shared; a run lost in gloo's teardown is
made again, for a baseline and for a run that judges a fix."""

import shutil

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


# what torchrun wrote to stderr after the abort line in a 2-rank baseline that failed this way
# (tests/test_validation_subset.py, 2026-12-03): the abort is 44 lines above the stderr's end
TORCHRUN_REPORT = ["W1203 17:24:28.205000 11861 torch/distributed/elastic/multiprocessing/api.py:1028] Sending "
                   "process 11865 closing signal SIGTERM",
                   "E1203 17:24:28.210000 11861 torch/distributed/elastic/multiprocessing/api.py:1002] failed "
                   "(exitcode: -6) local_rank: 1 (pid: 11866) of binary: python",
                   "Traceback (most recent call last):",
                   *["  File \"torch/distributed/run.py\", line 1028, in main", "    run(args)"] * 8,
                   "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
                   "=" * 55, "scripts.base_train FAILED", "-" * 55, "Failures:", "[1]:",
                   "  time      : 2026-12-03_17:24:28", "  host      : localhost", "  rank      : 0 (local_rank: 0)",
                   "  exitcode  : -15 (pid: 11865)  (SIGTERM)", "  error_file: <N/A>",
                   "  traceback : Signal 15 (SIGTERM) received by PID 11865", "-" * 55,
                   "Root Cause (first observed failure):", "[0]:", "  time      : 2026-12-03_17:24:28",
                   "  host      : localhost", "  rank      : 1 (local_rank: 1)",
                   "  exitcode  : -6 (pid: 11866)  (SIGABRT)", "  error_file: <N/A>",
                   "  traceback : Signal 6 (SIGABRT) received by PID 11866", "=" * 55]


def script_that_aborts_in_teardown(counter, aborts):
    """Prints its step, then on its first `aborts` runs writes the stderr of a rank that gloo
    aborted at teardown, torchrun's report after it, and exits as torchrun does then; `counter`
    (outside the workspace) counts runs."""
    return ("import pathlib, sys\n"
            f"counter = pathlib.Path({str(counter)!r})\n"
            "runs = int(counter.read_text()) + 1 if counter.exists() else 1\n"
            "counter.write_text(str(runs))\n"
            "print('step 00001/00001 | loss: 1.5', flush=True)\n"
            f"if runs <= {aborts}:\n"
            "    print('terminate called without an active exception', file=sys.stderr)\n"
            f"    print({chr(10).join(TORCHRUN_REPORT)!r}, file=sys.stderr)\n"
            "    sys.exit(1)\n")


def test_a_baseline_that_gloo_aborted_at_teardown_is_run_again(tmp_path, monkeypatch):
    counter = tmp_path / "runs"
    codebase = fake_codebase(tmp_path / "codebase", script_that_aborts_in_teardown(counter, aborts=1))
    in_state(monkeypatch, tmp_path / "state")
    training = baseline(codebase, TrainingRequest(steps=1))
    assert training.state == "finished" and counter.read_text() == "2"


def test_a_baseline_that_keeps_aborting_fails_and_says_what_its_stderr_ended_with(tmp_path, monkeypatch):
    counter = tmp_path / "runs"
    codebase = fake_codebase(tmp_path / "codebase", script_that_aborts_in_teardown(counter, aborts=99))
    in_state(monkeypatch, tmp_path / "state")
    with pytest.raises(BaselineFailed, match="a rank aborted in gloo's teardown .terminate called without an "
                                             "active exception. in each of its 3 runs"):
        baseline(codebase, TrainingRequest(steps=1))
    assert counter.read_text() == "3"  # ATTEMPTS runs, then it gives up


def test_a_baseline_that_fails_otherwise_is_not_run_again(tmp_path, monkeypatch):
    counter = tmp_path / "runs"
    codebase = fake_codebase(tmp_path / "codebase", script_that_aborts_in_teardown(counter, aborts=0)
                             + "raise SystemExit('no data')\n")
    in_state(monkeypatch, tmp_path / "state")
    with pytest.raises(BaselineFailed, match="its stderr ends: no data"):
        baseline(codebase, TrainingRequest(steps=1))
    assert counter.read_text() == "1"



# a codebase of one script, train.py (no data, no flags), loaded as a plugin is
ONE_SCRIPT = """from sandbox.codebases.script import ScriptCodebase


class OneScript(ScriptCodebase):
    name = "one-script"
    markers = ("train.py",)
    default_steps = 1


CODEBASE = OneScript()
"""


def test_a_run_that_judges_a_fix_is_made_again_after_a_teardown_abort(tmp_path, monkeypatch):
    """verify_fix, the judge and `bugdrill check` judge a fix by runs of the workspace: a rank lost in
    gloo's teardown there says nothing of the fix (runs in the open here, so the script can count
    them: BUGDRILL_ISOLATION=off)."""
    from server.runs import trains_like_pristine

    in_state(monkeypatch, tmp_path / "state")
    monkeypatch.setenv("BUGDRILL_ISOLATION", "off")
    counter = tmp_path / "runs"
    source = tmp_path / "codebase"
    source.mkdir()
    (source / "train.py").write_text("import os\nif os.path.basename(os.getcwd()) == 'candidate':\n"
                                     + "".join("    " + line + "\n" for line in
                                               script_that_aborts_in_teardown(counter, aborts=1).splitlines())
                                     + "else:\n    print('step 00001/00001 | loss: 1.5', flush=True)\n")
    candidate = shutil.copytree(source, tmp_path / "candidate")
    plugin = tmp_path / "one_script.py"
    plugin.write_text(ONE_SCRIPT)
    monkeypatch.setenv("BUGDRILL_CODEBASES", str(plugin))
    key = {"codebase_kind": "one-script", "codebase": "one-script", "codebase_path": str(source), "bugs": []}
    assert trains_like_pristine(key, candidate, label="verify") == (True, "")
    assert counter.read_text() == "2"
