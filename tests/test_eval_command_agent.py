"""`bugdrill eval --agent COMMAND`: a command-line agent run isolated against blind episodes,
scored like any other. An agent that does not exist, one that hangs past the time limit, and
one that breaks the code where nothing was wrong each end as a scored episode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.log import read_eval_log  # noqa: E402

from sandbox.isolation import isolation_available  # noqa: E402

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(not isolation_available()[0], reason=f"no isolation here: {isolation_available()[1]}")


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "BUGDRILL_STATE_DIR": str(tmp_path / "state"),
            "BUGDRILL_EPISODES_DIR": str(tmp_path / "episodes"), "OMP_NUM_THREADS": "1"}


def run_eval(env, tmp_path, agent, *arguments):
    logs = tmp_path / "logs"
    result = subprocess.run([str(BIN / "bugdrill"), "eval", "--agent", agent, "--log-dir", str(logs), "--json",
                             *arguments], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (log_file,) = logs.glob("*.eval")
    (sample,) = read_eval_log(str(log_file)).samples
    return json.loads(result.stdout), sample


def test_an_agent_that_does_not_exist_is_a_scored_episode(env, tmp_path):
    report, sample = run_eval(env, tmp_path, "no-such-agent-anywhere --flag", "--bugs", "1",
                              "--bugs-per-episode", "0", "--time-limit", "1")
    assert "not found" in sample.messages[-1].text
    verdict = sample.scores["episode_scorer"].metadata
    assert verdict["control"] and not verdict["changed"] and not verdict["false_positive"]
    assert report["rows"][-1]["group"] == "control" and report["rows"][-1]["successes"] == 0


def test_an_agent_that_hangs_is_stopped_at_the_time_limit_and_scored(env, tmp_path):
    report, sample = run_eval(env, tmp_path, "echo started; sleep 600", "--bugs", "1", "--time-limit", "0.1")
    text = sample.messages[-1].text
    assert "started" in text and "wall" in text, text
    verdict = sample.scores["episode_scorer"].metadata
    assert not verdict["control"] and verdict["credit"] == 0 and verdict["diagnoses"] == 0
    assert report["rows"][0]["successes"] == 0
    assert sample.total_time < 120


def test_an_agent_that_breaks_a_healthy_codebase_is_a_false_positive(env, tmp_path):
    # the agent reads its task from the contract's file and edits the workspace it is given
    agent = 'grep -q "nothing is wrong" "$BUGDRILL_TASK_FILE" && echo "import no_such_module" >> picochat/gpt.py'
    report, sample = run_eval(env, tmp_path, agent, "--bugs", "1", "--bugs-per-episode", "0", "--time-limit", "1")
    verdict = sample.scores["episode_scorer"].metadata
    assert verdict["control"] and verdict["changed"] and verdict["false_positive"]
    assert any("no_such_module" in line for line in verdict["broken"]), verdict["broken"]
    assert report["rows"][-1] == {**report["rows"][-1], "group": "control", "successes": 1}
