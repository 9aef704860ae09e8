"""The eval through Inspect AI's own command line: `inspect eval bugdrill/ml_debugging` with
the reference agent, offline (in a network namespace with no network where one can be made),
on a control, two single-bug episodes and a compound one. The report's figures must equal the
per-sample verdicts, and no transcript may hold what would give a bug away."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.log import read_eval_log  # noqa: E402

from bug_catalog.catalog import load_catalog  # noqa: E402
from evals import report  # noqa: E402

BIN = Path(sys.executable).parent
SAMPLES = "episode-001,episode-002,episode-003,episode-004"  # control, bug 1, bug 4, bugs 1 and 4
COMPOUND = "episode-004"


def offline_prefix():
    """`unshare -rn`: a network namespace with no interface up, so nothing can be downloaded."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(root / "state"), "BUGDRILL_EPISODES_DIR": str(root / "episodes"),
           "OMP_NUM_THREADS": "1"}
    command = [*offline_prefix(), str(BIN / "inspect"), "eval", "bugdrill/ml_debugging", "--model", "mockllm/model",
               "-T", "agent=reference", "-T", "bugs=1,4", "-T", "bugs_per_episode=[0,1,2]",
               "--sample-id", SAMPLES, "--log-dir", str(root / "logs"), "--display", "plain"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (log_file,) = (root / "logs").glob("*.eval")
    return root, env, log_file, read_eval_log(str(log_file))


@pytest.fixture(scope="module")
def react_run(eval_run):
    """The compound episode again on the react path (react's loop, the MCP tools, its submit tool),
    with the reference agent played as a model: `--model bugdrill/rulebook`."""
    root, env, _, _ = eval_run
    command = [*offline_prefix(), str(BIN / "inspect"), "eval", "bugdrill/ml_debugging", "--model", "bugdrill/rulebook",
               "-T", "agent=react", "-T", "bugs=1,4", "-T", "bugs_per_episode=[0,1,2]", "--sample-id", COMPOUND,
               "--max-tool-output", str(4 * 2**20), "--log-dir", str(root / "react-logs"), "--display", "plain"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (log_file,) = (root / "react-logs").glob("*.eval")
    return read_eval_log(str(log_file))


def test_every_episode_is_scored_by_behaviour(eval_run):
    _, _, _, log = eval_run
    assert log.status == "success"
    by_id = {s.id: s for s in log.samples}
    assert sorted(by_id) == SAMPLES.split(",")
    kinds = {s.id: s.metadata["bugs_per_episode"] for s in log.samples}
    assert kinds == {"episode-001": 0, "episode-002": 1, "episode-003": 1, "episode-004": 2}
    for sample in log.samples:
        verdict = sample.scores["episode_scorer"].metadata
        assert verdict["control"] == (sample.metadata["bugs_per_episode"] == 0)
        assert [b["bug"] for b in verdict["bugs"]] == sample.metadata["bugs"]
        assert verdict["runs"] >= 1 and verdict["tool_calls"] >= 1  # the agent did work through the tools
        # a bug's place is found only with a diagnosis graded at its location
        for bug in verdict["bugs"]:
            assert bug["credit"] == (bug["place"] + (bug["place"] and bug["cause"]) + bug["fixed"] + bug["clean"]) / 4


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
    catalog = load_catalog()
    state = str(root / "state")
    for sample in [*log.samples, *react_run.samples]:
        records = [catalog[b] for b in sample.metadata["bugs"]]
        asked_hints = any(m.role == "assistant" and any(c.function == "get_hint" for c in m.tool_calls or [])
                          for m in sample.messages)
        secrets = [state, *[r.slug for r in records], *[r.title for r in records],
                   *[r.explanation.strip()[:60] for r in records]]
        if not asked_hints:
            secrets += [hint[:60] for r in records for hint in r.hints]
        seen = [sample.input if isinstance(sample.input, str) else json.dumps(sample.input)]
        seen += [m.text for m in sample.messages if m.role in ("user", "tool", "system")]
        seen += [json.dumps(c.arguments) for m in sample.messages if m.role == "assistant" for c in m.tool_calls or []]
        for text in seen:
            for secret in secrets:
                assert secret not in text, f"{sample.id}: {secret!r} reached the agent"


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
