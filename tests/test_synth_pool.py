"""`bugdrill synth` as a user runs it: a small pool of the built-in codebase built with real
operators and real measured runs (20 mutants, 20-step runs), resumed by a second build that
measures only new mutants, reported without measuring; an interview and an eval episode drawn
from it; and bad input (an unknown family, a budget of 0, a checkout that does not train) as a
clear error."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLASSIFIER = REPO / "tests" / "fixtures" / "classifier"
PLUGIN = REPO / "tests" / "fixtures" / "classifier_codebase.py"
FIRST_BUILD = 20  # mutants: one of each of 20 families, since families take turns


def synth(env, *arguments, timeout=900):
    return subprocess.run([sys.executable, "-m", "server.cli", "synth", *arguments], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth-pool")
    return {**os.environ, "BUGDRILL_STATE_DIR": str(root / "state"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def first_build(state):
    # a budget the limit comes well before: on a loaded machine the default 10 minutes ran out at 18
    result = synth(state, "--limit", str(FIRST_BUILD), "--budget-minutes", "60", "--steps", "20", "--workers", "2",
                   "--scenarios", "0", "--json", timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def pool_rows(data, name):
    path = Path(data["pool"]) / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_small_pool_is_measured_and_every_kept_bug_carries_its_evidence(first_build):
    assert first_build["measured"] == FIRST_BUILD and first_build["stopped_by"] == "limit"
    tried = pool_rows(first_build, "tried.jsonl")
    assert len(tried) == FIRST_BUILD and len({row["id"] for row in tried}) == FIRST_BUILD
    assert len({row["family"] for row in tried}) == FIRST_BUILD
    kept = pool_rows(first_build, "kept.jsonl")
    assert first_build["kept"] == len(kept) == sum(row["outcome"] == "kept" for row in tried)
    for bug in kept:
        assert bug["symptoms"] and bug["summary"] and bug["cause"] and bug["commands"]
        assert bug["difficulty"] in ("easy", "medium", "hard") and bug["evidence"]
        assert (Path(first_build["pool"]) / "texts" / f"{bug['id']}.py").is_file()
    for row in tried:
        assert row["outcome"] in ("kept", "equivalent", "unreached", "no_symptom", "does_not_compile"), row
    table = {row["family"]: row for row in first_build["families"]}
    assert sum(row["tried"] for row in table.values()) == FIRST_BUILD
    assert sum(row["kept"] for row in table.values()) == first_build["kept"]


def test_a_second_build_resumes_and_measures_only_new_mutants(first_build, state):
    result = synth(state, "--limit", "1", "--budget-minutes", "60", "--steps", "20", "--scenarios", "0", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout)
    tried = pool_rows(again, "tried.jsonl")
    assert again["measured"] == 1 and len(tried) == len({row["id"] for row in tried}) == FIRST_BUILD + 1
    # --scenarios 0: each mutant in its first run alone (more runs: the stubbed test below); an
    # unreached one in none
    assert all(len(row["tried_in"]) == (row["outcome"] != "unreached") for row in tried)



def test_the_report_prints_what_the_pool_holds_and_measures_nothing(first_build, state):
    before = pool_rows(first_build, "tried.jsonl")
    result = synth(state, "--report", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert pool_rows(first_build, "tried.jsonl") == before
    assert report["pool_size"] == len(pool_rows(first_build, "kept.jsonl")) and "measured" not in report
    assert sum(row["tried"] for row in report["families"]) == len(before)
    assert sum(row["candidates"] for row in report["families"]) >= 1000  # every family's, on picochat

def test_save_ledger_writes_a_row_for_every_mutant_the_pool_has_tried(first_build, state, tmp_path):
    result = synth({**state, "BUGDRILL_SYNTH_LEDGERS": str(tmp_path)}, "--save-ledger")
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = tmp_path.glob("picochat-*.jsonl")
    assert str(written) in result.stdout
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    tried = pool_rows(first_build, "tried.jsonl")
    assert sorted(row["id"] for row in rows) == sorted(row["id"] for row in tried)
    assert sum("kept" in row for row in rows) == len(pool_rows(first_build, "kept.jsonl"))


def test_bad_input_is_a_clear_error(state, tmp_path):
    unknown = synth(state, "--families", "no-such-family", "--limit", "1")
    assert unknown.returncode == 2 and "no-such-family" in unknown.stderr, unknown.stderr
    nothing = synth(state, "--budget-minutes", "0")
    assert nothing.returncode == 2 and "budget" in nothing.stderr, nothing.stderr
    broken = tmp_path / "classifier"
    shutil.copytree(CLASSIFIER, broken, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    train = broken / "train.py"
    train.write_text(train.read_text().replace("def main(", "raise SystemExit('no data here')\n\n\ndef main(", 1))
    env = {**state, "BUGDRILL_CODEBASES": str(PLUGIN)}
    untrainable = synth(env, "--codebase", str(broken), "--limit", "2", "--steps", "5")
    assert untrainable.returncode == 2 and "does not train" in untrainable.stderr, untrainable.stderr


@pytest.mark.anyio
async def test_an_interview_draws_from_the_built_pool_and_its_run_shows_the_measured_symptom(first_build, state,
                                                                                            monkeypatch):
    from mcp import Client

    from mcp_calls import call
    from server.app import build_server

    monkeypatch.setenv("BUGDRILL_STATE_DIR", state["BUGDRILL_STATE_DIR"])
    kept = {bug["id"]: bug for bug in pool_rows(first_build, "kept.jsonl")}
    assert kept, "the small build kept nothing to draw"
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug="synth", seed=5)
        interview = started["interview_id"]
        revealed = (await call(client, "reveal", interview_id=interview))["bugs"][0]
        bug = kept[revealed["id"]]
        assert revealed["diff"] and revealed["explanation"] == bug["cause"]
        run = await call(client, "run_training", interview_id=interview)
        # the same request and seed as the measured run: the interview's run shows what the pool recorded
        assert set(bug["symptoms"]) <= set(run["symptoms"]), (bug["symptoms"], run["symptoms"], bug["cause"])


def test_an_eval_episode_on_the_built_pool_judges_a_bug_left_in_place_not_fixed(first_build, state, tmp_path):
    """`bugdrill eval --source synth` on the pool just built, with an agent that changes nothing:
    the generic check (the workspace's runs against the same-seed pristine runs) must not call
    the synthesized bug fixed, and the episode names a bug the build kept."""
    pytest.importorskip("inspect_ai")
    from inspect_ai.log import read_eval_log

    from sandbox.isolation import isolation_available

    if not isolation_available()[0]:
        pytest.skip(f"no isolation here for a command-line agent: {isolation_available()[1]}")
    kept = {bug["id"] for bug in pool_rows(first_build, "kept.jsonl")}
    env = {**state, "BUGDRILL_EPISODES_DIR": str(tmp_path / "episodes")}
    result = subprocess.run([str(Path(sys.executable).parent / "bugdrill"), "eval", "--agent", "true",
                             "--source", "synth", "--synth-bugs", "1", "--bugs-per-episode", "1",
                             "--time-limit", "1", "--log-dir", str(tmp_path / "logs"), "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (log_file,) = (tmp_path / "logs").glob("*.eval")
    (sample,) = read_eval_log(str(log_file)).samples
    (bug,) = sample.metadata["bugs"]
    assert bug in kept and sample.metadata["category"] == "synthesized"
    verdict = sample.scores["episode_scorer"].metadata
    (scored,) = verdict["bugs"]
    assert scored["bug"] == bug and scored["fixed"] is False, verdict
    assert verdict["credit"] == 0 and not verdict["changed"], verdict


def test_an_equivalent_mutant_is_tried_in_the_next_runs_of_its_file(monkeypatch):
    """measure_in_turn with the measurement stubbed: equivalent in the default run, shown in the
    second scenario, never run in the third; a failing pristine run elsewhere leaves what stood."""
    from types import SimpleNamespace

    from bug_synth import build as building

    runs = [SimpleNamespace(scenario=name) for name in ("base", "resume", "ddp")]
    outcomes = {"base": "equivalent", "resume": "kept", "ddp": "kept"}
    measured = []

    def fake_measure(codebase, source, mutant, request, scratch, is_default):
        measured.append((request.scenario, is_default))
        outcome = outcomes[request.scenario]
        return {"id": "m", "outcome": outcome, "seconds": 2.0}, ("bug" if outcome == "kept" else None)

    monkeypatch.setattr(building, "measure", fake_measure)
    row, bug = building.measure_in_turn(None, None, None, runs, None, plain=runs[0])
    assert measured == [("base", True), ("resume", False)]
    assert (row["outcome"], row["tried_in"], row["seconds"], bug) == ("kept", ["base", "resume"], 4.0, "bug")

    outcomes.update(resume="equivalent", ddp="baseline_failed")
    measured.clear()
    row, bug = building.measure_in_turn(None, None, None, runs, None, plain=runs[0])
    assert (row["outcome"], row["tried_in"], bug) == ("equivalent", ["base", "resume"], None)
    assert "ddp" in row["detail"]
    assert building.check_inputs(1, 1, None, scenarios=0) is None
    with pytest.raises(building.BuildError, match="scenarios"):
        building.check_inputs(1, 1, None, scenarios=-1)
