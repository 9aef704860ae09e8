"""The eval through Inspect AI's own command line: `inspect eval bugdrill/ml_debugging` with
the reference agent, offline (in a network namespace with loopback alone where one can be made),
on a control and a compound episode. The report's figures must equal the
per-sample verdicts, and no transcript may hold what would give a bug away."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from evals import report  # noqa: E402
from evals.reference_agent import WHOLE_RESULTS  # noqa: E402
from inspect_runs import BIN, giveaways, inspect_eval, offline_prefix  # noqa: E402

SAMPLES = "episode-001,episode-004"  # a control, and bugs 1 and 4 together (each alone: episodes 002 and 003)
COMPOUND = "episode-004"
PLAN = ["-T", "bugs=1,4", "-T", "bugs_per_episode=[0,1,2]"]


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(root / "state"), "BUGDRILL_EPISODES_DIR": str(root / "episodes"),
           "OMP_NUM_THREADS": "1"}
    log_file, log = inspect_eval(["--model", "mockllm/model", "-T", "agent=reference", *PLAN, "--sample-id", SAMPLES],
                                 env, root / "logs")
    return root, env, log_file, log


@pytest.fixture(scope="module")
def react_run(eval_run):
    """The compound episode again on the react path (react's loop, the MCP tools, its submit tool),
    with the reference agent played as a model: `--model bugdrill/rulebook`."""
    root, env, _, _ = eval_run
    _, log = inspect_eval(["--model", "bugdrill/rulebook", "-T", "agent=react", *PLAN, "--sample-id", COMPOUND,
                           "--max-tool-output", str(WHOLE_RESULTS)], env, root / "react-logs", timeout=600)
    return log


def test_every_episode_is_scored_by_behaviour(eval_run):
    _, _, _, log = eval_run
    assert log.status == "success"
    by_id = {s.id: s for s in log.samples}
    assert sorted(by_id) == SAMPLES.split(",")
    kinds = {s.id: s.metadata["bugs_per_episode"] for s in log.samples}
    assert kinds == {"episode-001": 0, "episode-004": 2}
    for sample in log.samples:
        verdict = sample.scores["episode_scorer"].metadata
        assert verdict["control"] == (sample.metadata["bugs_per_episode"] == 0)
        assert [b["bug"] for b in verdict["bugs"]] == sample.metadata["bugs"]
        assert verdict["runs"] >= 1 and verdict["tool_calls"] >= 1  # the agent did work through the tools
        # a bug's place is found only with a diagnosis graded at its location
        for bug in verdict["bugs"]:
            assert bug["credit"] == (bug["place"] + (bug["place"] and bug["cause"]) + bug["fixed"] + bug["clean"]) / 4
    # the reference agent claims nothing on the control, and finds zero_grad misplaced (bug 1: not
    # learning) from its symptoms (tests/test_reference_agent.py leaves these two to this test)
    control = by_id["episode-001"].scores["episode_scorer"].metadata
    assert control["false_positive"] is False and control["diagnoses"] == 0 and not control["changed"], control
    (zero_grad,) = [b for b in by_id[COMPOUND].scores["episode_scorer"].metadata["bugs"] if b["bug"] == 1]
    assert zero_grad["place"] and zero_grad["cause"], zero_grad


def test_the_report_equals_the_per_sample_verdicts(eval_run):
    _, env, log_file, log = eval_run
    verdicts = {s.id: s.scores["episode_scorer"] for s in log.samples}
    bug_samples = [s for s in log.samples if s.metadata["bugs_per_episode"]]
    controls = [s for s in log.samples if not s.metadata["bugs_per_episode"]]

    rows = {(r.group, r.name): r for r in report.rows(report.load_episodes([log_file]))}
    everything = rows[("all", "bug episodes")]
    assert everything.episodes == len(bug_samples)
    assert everything.successes == sum(verdicts[s.id].value["solved"] for s in bug_samples)
    for sample in bug_samples:
        row = rows[("category", sample.metadata["category"])]
        members = [s for s in bug_samples if s.metadata["category"] == sample.metadata["category"]]
        assert row.episodes == len(members)
        assert row.mean_credit == pytest.approx(sum(verdicts[s.id].value["credit"] for s in members) / len(members))
    control = rows[("control", "false positives")]
    assert control.episodes == len(controls)
    assert control.successes == sum(verdicts[s.id].metadata["false_positive"] for s in controls)

    # Inspect's own metrics agree with the samples too
    solved = next(s for s in log.results.scores if s.name == "solved")
    assert solved.metrics["mean"].value == pytest.approx(
        sum(v.value["solved"] for v in verdicts.values()) / len(verdicts))

    # and `bugdrill report` prints the same figures
    printed = subprocess.run([str(BIN / "bugdrill"), "report", str(log_file), "--json"], env=env,
                             capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert {(r["group"], r["name"]): r["successes"] for r in json.loads(printed.stdout)["rows"]} == \
        {key: row.successes for key, row in rows.items()}


def tool_calls(sample):
    """(function, arguments) of every call but react's submit; a run's id differs between evals."""
    return [(c.function, {k: ("<run id>" if k == "run_id" else v) for k, v in c.arguments.items()})
            for m in sample.messages if m.role == "assistant" for c in m.tool_calls or [] if c.function != "submit"]


def test_the_react_path_runs_a_model_with_the_mcp_tools(eval_run, react_run):
    """The same agent by both paths must make the same calls and earn the same verdict; the
    react one also carries the model's token use into the score."""
    reference = next(s for s in eval_run[3].samples if s.id == COMPOUND)
    (react,) = react_run.samples
    assert react_run.status == "success" and react_run.eval.model == "bugdrill/rulebook"
    assert react.messages[0].role == "system"  # react's own system prompt: this is react's loop
    assert tool_calls(react) == tool_calls(reference) and len(tool_calls(react)) >= 3
    ours, theirs = react.scores["episode_scorer"], reference.scores["episode_scorer"]
    assert ours.metadata["bugs"] == theirs.metadata["bugs"] and ours.value == theirs.value
    assert ours.metadata["tokens"] == sum(u.total_tokens for u in react.model_usage.values()) > 0
    assert react.output.completion.strip().endswith(reference.output.completion.strip())


def test_no_transcript_gives_a_bug_away(eval_run, react_run):
    root, _, _, log = eval_run
    for sample in [*log.samples, *react_run.samples]:
        assert not giveaways(sample, root / "state"), f"{sample.id}: {giveaways(sample, root / 'state')} reached the agent"


LOOPBACK_BUT_NOTHING_ELSE = """
import socket
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
socket.create_connection(server.getsockname(), timeout=5).close()
try:
    socket.create_connection(("192.0.2.1", 80), timeout=5)  # TEST-NET-1: never a real host
except OSError:
    print("offline, loopback up")
"""


def test_the_offline_namespace_keeps_loopback_for_two_rank_runs():
    """torchrun's rendezvous is a TCP store on localhost: with loopback down, every 2-rank run or
    check inside an offline eval waited until its time limit."""
    prefix = offline_prefix()
    if not prefix:
        pytest.skip("no network namespace can be made here")
    probe = subprocess.run([*prefix, sys.executable, "-c", LOOPBACK_BUT_NOTHING_ELSE], capture_output=True,
                           text=True, timeout=60)
    assert probe.stdout.strip() == "offline, loopback up", probe.stderr[-1000:]


def test_bad_eval_input_is_a_clear_error(eval_run):
    _, env, _, _ = eval_run
    for arguments, message in ((["--bugs", "999"], "unknown bug '999'"),
                               (["--bugs", "1", "--shard", "3/2"], "shard 3/2"),
                               (["--bugs", "1", "--bugs-per-episode", "3"], "bugs_per_episode must be 0, 1 or 2")):
        result = subprocess.run([str(BIN / "bugdrill"), "eval", *arguments], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    missing = subprocess.run([str(BIN / "bugdrill"), "report", str(Path(env["BUGDRILL_STATE_DIR"]) / "nothing")],
                             env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "no such log" in missing.stderr
