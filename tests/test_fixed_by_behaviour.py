""""Fixed" is behaviour on the path that showed the bug: the bug's check passes AND the workspace's
short runs match the same-seed pristine runs (server/runs.py short_run_stage, sandbox/matching.py).

A fix written differently from the pristine text passes; a workspace that forges its checks' report
(here: by replacing the report line the check process prints, an attack that beat verification
before the runs were compared) and leaves the bug in does not.
"""

import textwrap
from pathlib import Path

import pytest

from bug_catalog.catalog import load_catalog
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.matching import Match, runs_match
from sandbox.rundata import RunData
from sandbox.logparse import ParsedLog
from bug_catalog.checking import run_checks
from server.interviews import Interviews, StageResult
from sandbox.codebases.picochat import MATCH_STEPS
from server.runs import behaviour_requests, short_run_stage

GPT = "picochat/gpt.py"
PRISTINE_SCALE = "scores = (q @ k.transpose(-2, -1)) * scale"
REWRITTEN_SCALE = "scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))"


@pytest.fixture
def interviews(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(tmp_path / "state"))
    return Interviews(workspaces_root=tmp_path / "workspaces")


def started(interviews, bug, variant):
    record = load_catalog()[bug]
    chosen = [(record, next(v for v in record.variants if v.name == variant))]
    interview = interviews.start_with("production_debugging", chosen, seed=0)
    return interview, interviews.key(interview)


def own_check(interview, key, report=None):
    """The bug's own check alone: the rest of the catalogue's checks change nothing here, and take minutes."""
    name = load_catalog()[key["bugs"][0]["id"]].check
    result = run_checks(str(interview.workspace), [name])[name]
    return [StageResult(name, result["passed"], result["detail"], key["bugs"][0]["id"])]


def verdict(interviews, interview):
    fixed, stages, _ = interviews.verify(interview.id, stages=(own_check, short_run_stage))
    return fixed, {s.name: s for s in stages}


def test_a_fix_written_differently_from_the_pristine_text_is_fixed(interviews):
    interview, key = started(interviews, 5, "scale-dropped")
    bug = key["bugs"][0]
    assert PRISTINE_SCALE in bug["pristine"]
    rewritten = bug["pristine"].replace(PRISTINE_SCALE, REWRITTEN_SCALE)
    (Path(interview.workspace) / GPT).write_text(rewritten)
    fixed, stages = verdict(interviews, interview)
    assert fixed, {name: s.detail for name, s in stages.items() if not s.passed}


def test_a_forged_check_report_with_the_bug_left_in_is_not_fixed(interviews):
    interview, key = started(interviews, 5, "scale-dropped")
    workspace = Path(interview.workspace)
    # the forged report wins over the checks only if it is the line read: it prints every check as
    # passed and exits before the real report, when imported by a check process (never in training)
    forge = textwrap.dedent("""
        import json, os, sys
        if "bug_catalog.registry" in sys.modules:  # a check process: training never imports the framework
            frame = sys._getframe()
            while frame is not None and "nonce" not in frame.f_locals:
                frame = frame.f_back
            if frame is not None:
                names = frame.f_locals.get("names", [])
                report = {n: {"passed": True, "detail": ""} for n in names}
                os.write(1, ("\\n%s %s\\n" % (frame.f_locals["nonce"], json.dumps(report))).encode())
                os._exit(0)
    """)
    init = workspace / "picochat" / "__init__.py"
    init.write_text(init.read_text() + forge if init.exists() else forge)
    fixed, stages = verdict(interviews, interview)
    assert stages[load_catalog()[5].check].passed, "the forged report should have fooled the check"
    assert not stages["runs against the pristine code"].passed
    assert not fixed


def test_the_verification_runs_include_the_bugs_measured_run_cut_short(interviews):
    record = load_catalog()[30]
    variant = record.variants[0]
    _, key = started(interviews, 30, variant.name)
    sanity, measured = behaviour_requests(key)
    assert sanity.scenario == "base" and sanity.steps == 30
    assert measured.scenario == (variant.scenario or record.scenario)
    assert measured.args == [*record.run_args, *variant.run_args] and measured.steps == MATCH_STEPS


def fake_run(losses, state="finished"):
    log = ParsedLog(train=[{"step": i + 1, "loss": v} for i, v in enumerate(losses)])
    return RunData(run_dir=Path("."), spec={"argv": ["-m", "scripts.base_train"]}, result={"state": state},
                   log=log, stdout="", stderr="")


def test_runs_match_within_rounding_and_not_beyond():
    base = fake_run([3.0, 2.5, 2.0])
    assert runs_match(fake_run([3.0, 2.5 * (1 + 1e-6), 2.0]), base).same
    assert runs_match(fake_run([3.0, 2.5, 2.02]), base) == Match(
        False, "loss at step 3 (stage 1) is 2.02, the pristine run's 2")
    assert not runs_match(fake_run([3.0, 2.5]), base).same
    assert not runs_match(fake_run([3.0, 2.5, 2.0], state="failed"), base).same



def test_runs_match_compares_every_figure_the_code_sets_and_none_the_machine_sets():
    """A validation logged under another name (chat_sft's "val loss (assistant tokens)") and an
    evaluation stage's accuracy count; step time, throughput and wall time do not. Found when an
    unedited synthesized bug (the SFT validation drawn with the training seed) was judged fixed."""
    def run(val, accuracy, dt, seconds):
        log = ParsedLog(train=[{"step": 1, "loss": 3.0, "dt": dt, "tok/sec": 1000 / dt}],
                        evals=[{"step": 1, "val loss (assistant tokens)": val, "answer accuracy": 0.5}],
                        summary={"val loss": val, "time": seconds}, other={"probe": {"accuracy": accuracy}},
                        units={"time": "s"})
        return RunData(run_dir=Path("."), spec={}, result={"state": "finished"}, log=log, stdout="", stderr="")

    base = run(2.0, 0.40, 0.1, 10.0)
    assert runs_match(run(2.0, 0.40, 0.3, 31.0), base).same
    assert runs_match(run(2.0, 0.405, 0.1, 10.0), base).same  # one count of a printed fraction
    assert runs_match(run(1.6, 0.40, 0.1, 10.0), base) == Match(
        False, "val loss (assistant tokens) at step 1 (stage 1) is 1.6, the pristine run's 2")
    assert runs_match(run(2.0, 0.30, 0.1, 10.0), base) == Match(
        False, "probe accuracy is 0.3, the pristine run's 0.4")

def test_every_check_runs_once_whatever_fails(interviews, monkeypatch):
    """bug_checks runs every check once, in one call: a failure is not run again (the 2-rank checks
    run a rank lost in gloo's teardown again themselves), so neither a check that hangs to its limit
    nor the time a verification takes says which check failed."""
    import server.interviews as verification

    interview, key = started(interviews, 5, "scale-dropped")
    calls = []

    def fake_run_checks(workspace, names, timeout=300, jobs=1):
        calls.append(list(names))
        details = {"zero-grad": "AssertionError: the gradients were not cleared",
                   "loss-not-averaged": "subprocess.TimeoutExpired: Command '[...]' timed out after 240 seconds",
                   "corpus-barrier-missing": "the checks took longer than 300 s"}
        return {name: {"passed": name not in details, "detail": details.get(name, "")} for name in names}

    monkeypatch.setattr(verification, "run_checks", fake_run_checks)
    stages = verification.bug_checks(interview, key)
    assert len(calls) == 1 and set(calls[0]) >= {"zero-grad", "loss-not-averaged", "attention-unscaled"}, calls
    assert not all(stage.passed for stage in stages)


def test_the_pristine_code_byte_for_byte_is_fixed_without_running_anything(interviews, monkeypatch):
    """A workspace whose every file is the pristine code's is judged by what it is: no check or run
    (they would be the pristine code's own). One byte, one file more or less, or a link is not that."""
    import os

    import server.interviews as verification
    import server.runs as runs
    from sandbox.workspace import is_pristine_copy, restore_workspace

    interview, key = started(interviews, 5, "scale-dropped")
    workspace, source = Path(interview.workspace), PICOCHAT_DIR
    assert not is_pristine_copy(workspace, source)
    restore_workspace(workspace)
    assert is_pristine_copy(workspace, source)

    def nothing_may_run(*args, **kwargs):
        raise AssertionError("ran something on the pristine code")

    monkeypatch.setattr(verification, "run_checks", nothing_may_run)
    monkeypatch.setattr(runs, "trains_like_pristine", nothing_may_run)
    stages = [*verification.bug_checks(interview, key), *short_run_stage(interview, key)]
    assert all(stage.passed and "byte for byte" in stage.detail for stage in stages), stages

    gpt = workspace / GPT
    text = gpt.read_text()
    gpt.write_text(text + " ")
    assert not is_pristine_copy(workspace, source)
    gpt.write_text(text)
    for extra in ("sitecustomize.py", "picochat/__pycache__/gpt.cpython-311.pyc"):
        (workspace / extra).parent.mkdir(exist_ok=True)
        (workspace / extra).write_text("")
        assert not is_pristine_copy(workspace, source), extra
        (workspace / extra).unlink()
    gpt.unlink()
    assert not is_pristine_copy(workspace, source)
    os.symlink(source / GPT, gpt)
    assert not is_pristine_copy(workspace, source)
    gpt.unlink()
    gpt.write_text(text)
    assert is_pristine_copy(workspace, source)


def test_in_a_compound_episode_a_bug_fixed_alone_counts_as_fixed(interviews, monkeypatch):
    """Two bugs in two files, one fixed: the judge credits that one, judged on a copy with the other
    bug's file put back as the pristine code's; the one left is not fixed. (Checks and runs are
    stubbed: a check passes when its bug's file is the pristine text, and a workspace trains like
    the pristine code when both files are.)"""
    import evals.judge as judging

    catalog = load_catalog()
    chosen = [(catalog[5], next(v for v in catalog[5].variants if v.name == "scale-dropped")),
              (catalog[8], catalog[8].variants[0])]
    interview = interviews.start_with("production_debugging", chosen, seed=0)
    key = interviews.key(interview)
    first, second = key["bugs"]
    assert first["file"] != second["file"]
    (Path(interview.workspace) / first["file"]).write_text(first["pristine"])  # the fix of the first bug

    def is_pristine(workspace, bug):
        return (Path(workspace) / bug["file"]).read_text() == bug["pristine"]

    def fake_run_checks(workspace, names, timeout=300, jobs=1):
        by_check = {catalog[b["id"]].check: b for b in key["bugs"]}
        return {name: {"passed": is_pristine(workspace, by_check[name]), "detail": ""} for name in names}

    def fake_trains_like_pristine(key_, workspace, label):
        same = all(is_pristine(workspace, bug) for bug in key["bugs"])
        return same, "" if same else "loss at step 1 differs"

    monkeypatch.setattr(judging, "run_checks", fake_run_checks)
    monkeypatch.setattr(judging, "trains_like_pristine", fake_trains_like_pristine)
    monkeypatch.setattr(judging, "_behaviour", lambda interview_, key_: StageResult(
        "runs against the pristine code", *fake_trains_like_pristine(key, interview_.workspace, "judge")))
    verdict = judging.judge(interviews, interview)
    fixed = {bug.bug: bug.fixed for bug in verdict.bugs}
    assert fixed == {first["id"]: True, second["id"]: False}, fixed
    assert not any(bug.clean for bug in verdict.bugs)  # clean asks for every bug fixed


def test_the_judges_copy_of_a_workspace_holds_its_regular_files_and_no_link(tmp_path):
    """A link the candidate planted (to the answer key, say) must not become a readable file in the
    copy the judge trains."""
    from sandbox.codebase import regular_files_copy

    secret = tmp_path / "secret.json"
    secret.write_text("the answer")
    workspace = tmp_path / "ws"
    (workspace / "picochat").mkdir(parents=True)
    (workspace / "picochat" / "gpt.py").write_text("x = 1\n")
    (workspace / "key.json").symlink_to(secret)
    (workspace / "linked").symlink_to(tmp_path, target_is_directory=True)
    copy = regular_files_copy(workspace, tmp_path / "copy")
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*")) == ["picochat", "picochat/gpt.py"]
