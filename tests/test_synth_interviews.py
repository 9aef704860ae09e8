"""A synthesized bug in an interview, end to end: a mutant measured into a pool (bug_synth), drawn
by start_interview(bug="synth:<id>"), trained from the run that showed it, diagnosed against the
mutant's own cause, revealed with its operator, diff and measured symptom; and judged fixed by
behaviour alone (the runs against the same-seed pristine runs), so that a fix written differently
from the pristine text passes and the bug left in place does not."""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client

from bug_synth.measure import measure, request_for_file
from bug_synth.pool import Pool
from mcp_calls import call, error
from sandbox import codebases
from server.app import build_server
from server.interviews import Interviews
from server.runs import short_run_stage

REPO = Path(__file__).resolve().parents[1]
GPT = "picochat/gpt.py"
PRISTINE = "std=module.in_features ** -0.5"
MUTATED = "std=module.in_features ** 0.5"
REWRITTEN_FIX = "std=1.0 / math.sqrt(module.in_features)"
STEPS = 20


@dataclass(frozen=True)
class Mutant:  # the shape bug_synth.operators yields
    family: str
    file: str
    line: int
    function: str
    before: str
    after: str
    text: str
    cause: str
    cause_terms: tuple


def init_scale_mutant(source):
    text = (source / GPT).read_text()
    assert text.count(PRISTINE) == 1
    line = text[:text.index(PRISTINE)].count("\n") + 1
    return Mutant("scale-exponent", GPT, line, "GPT._init_weights", "module.in_features ** -0.5",
                  "module.in_features ** 0.5", text.replace(PRISTINE, MUTATED),
                  "the init std is in_features ** 0.5 instead of in_features ** -0.5 in GPT._init_weights: weights "
                  "start orders of magnitude too large", (("init", "std"), ("0.5", "sqrt", "large", "scale")))


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """A pool holding one measured mutant of the built-in codebase, in a state directory the
    module's tests share; (pool, its bug)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BUGDRILL_STATE_DIR", str(tmp_path_factory.mktemp("synth") / "state"))
        patch.setenv("OMP_NUM_THREADS", "1")
        yield measured_pool()


def measured_pool():
    codebase = codebases.builtin()
    mutant = init_scale_mutant(codebase.source)
    request = request_for_file(codebase, codebase.source, GPT, steps=STEPS)
    row, bug = measure(codebase, codebase.source, mutant, request, tempfile.mkdtemp())
    assert row["outcome"] == "kept", row
    pool = Pool(codebase, codebase.source)
    bug.digest = pool.digest
    pool.record(row, bug, mutant.text)
    return pool, bug


@pytest.fixture(autouse=True)
def in_the_pools_state(pooled, monkeypatch):
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(pooled[0].root.parents[1]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_the_measured_mutant_records_its_evidence(pooled):
    pool, bug = pooled
    (kept,) = pool.kept()
    assert kept.id == bug.id and kept.symptoms and kept.summary and kept.steps == STEPS
    assert kept.difficulty in ("easy", "medium", "hard") and kept.evidence
    assert "not_learning" in kept.symptoms or "diverged" in kept.symptoms, kept.symptoms
    assert pool.text(bug.id).count(MUTATED) == 1


@pytest.mark.anyio
async def test_an_interview_on_a_synthesized_bug(pooled):
    _, bug = pooled
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug=f"synth:{bug.id}", seed=3)
        interview = started["interview_id"]
        assert bug.id not in str(started) and "scale-exponent" not in str(started)
        run = await call(client, "run_training", interview_id=interview)
        assert run["state"] == "finished" and set(bug.symptoms) <= set(run["symptoms"]), run
        hint = await call(client, "get_hint", interview_id=interview)
        assert bug.symptoms[0] in hint["hints"][0]
        wrong = await call(client, "submit_diagnosis", interview_id=interview, file="picochat/gpt.py",
                           function="CausalSelfAttention.forward", what_is_wrong="the attention mask is flipped")
        assert not wrong["found"]
        right = await call(client, "submit_diagnosis", interview_id=interview, file=GPT, line=bug.line,
                           function="GPT._init_weights",
                           what_is_wrong="the init std uses in_features ** 0.5, so weights start far too large")
        assert right["found"], right
        revealed = (await call(client, "reveal", interview_id=interview))["bugs"][0]
        assert revealed["id"] == bug.id and revealed["variant"] == "scale-exponent"
        assert MUTATED in revealed["diff"] and bug.cause == revealed["explanation"]
        assert str(STEPS) in revealed["symptom"] and bug.symptoms[0] in revealed["symptom"]
        assert "no synthesized bug" in await error(client, "start_interview", kind="code_review", bug="synth:s000")


def test_fixed_is_behaviour_a_fix_written_differently_passes_and_the_bug_left_in_does_not(pooled, tmp_path):
    _, bug = pooled
    interviews = Interviews(workspaces_root=tmp_path / "workspaces")
    interview = interviews.start("production_debugging", bug=f"synth:{bug.id}", seed=1)
    fixed, stages, _ = interviews.verify(interview.id, stages=(short_run_stage,))
    assert not fixed, stages
    text = (Path(interview.workspace) / GPT).read_text()
    (Path(interview.workspace) / GPT).write_text(text.replace(MUTATED, REWRITTEN_FIX))
    fixed, stages, _ = interviews.verify(interview.id, stages=(short_run_stage,))
    assert fixed, [(s.name, s.detail) for s in stages]


def test_an_eval_episode_on_a_synthesized_bug_is_scored_by_behaviour(pooled, tmp_path):
    """`inspect eval bugdrill/ml_debugging -T source=synth` with the reference agent: the episode
    holds the pool's bug, and the judge scores it by the runs (the agent's fix or not)."""
    pytest.importorskip("inspect_ai")
    from inspect_runs import inspect_eval

    pool, bug = pooled
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(pool.root.parents[1]),
           "BUGDRILL_EPISODES_DIR": str(tmp_path / "episodes"), "OMP_NUM_THREADS": "1"}
    _, log = inspect_eval(["--model", "mockllm/model", "-T", "agent=reference", "-T", "source=synth",
                           "-T", "synth_bugs=1", "-T", "kind=code_review"], env, tmp_path / "logs")
    (sample,) = log.samples
    assert sample.metadata["bugs"] == [bug.id] and sample.metadata["category"] == "synthesized"
    verdict = sample.scores["episode_scorer"].metadata
    (scored,) = verdict["bugs"]
    assert scored["bug"] == bug.id and scored["fixed"] in (True, False)
    assert bug.id not in (sample.input if isinstance(sample.input, str) else str(sample.input))


def test_the_command_line_injects_and_reveals_a_synthesized_bug(pooled, tmp_path):
    pool, bug = pooled
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(pool.root.parents[1])}

    def bugdrill(*arguments):
        return subprocess.run([sys.executable, "-m", "server.cli", *arguments], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)

    workspace = tmp_path / "ws"
    injected = bugdrill("inject", f"synth:{bug.id}", "--workspace", str(workspace))
    assert injected.returncode == 0, injected.stderr
    assert bug.id not in injected.stdout and (workspace / GPT).read_text().count(MUTATED) == 1
    revealed = bugdrill("reveal", "--workspace", str(workspace), "--json")
    assert revealed.returncode == 0, revealed.stderr
    (shown,) = json.loads(revealed.stdout)
    assert shown["id"] == bug.id and shown["variant"] == "scale-exponent" and MUTATED in shown["diff"]
    assert "pristine" not in shown and "synth" not in shown
    missing = bugdrill("inject", "synth:s0123456789a", "--workspace", str(tmp_path / "other"))
    assert missing.returncode == 2 and "no synthesized bug" in missing.stderr, missing.stderr
