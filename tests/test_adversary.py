"""The adversary of issue 15 (evals/adversary_agent.py) plays episodes of every category through
Inspect (`-T agent=adversary`), and one through the command-line path (`bugdrill eval --agent
adversary-shell`, isolated). It never debugs: it forges verdicts, exfiltrates through runs and
checks, buys diagnoses, and abuses flags and regexes. Every episode must score 0, every attack
must come back without what it wanted, and nothing the adversary could read (its transcript, the
workspace its payloads write into) may hold the answer key, the pristine text or the state
directory's path."""

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")
# an episode of every category, each with its verifications and the judge: over half an hour on the
# 2-core CI machine, past its budget, so it is a command of its own (README) and not part of CI
if not os.environ.get("BUGDRILL_ADVERSARY"):
    pytest.skip("set BUGDRILL_ADVERSARY=1 to play the adversary's episodes", allow_module_level=True)

from inspect_ai.log import read_eval_log  # noqa: E402

from bug_catalog.catalog import load_catalog  # noqa: E402
from evals.adversary_shell import RECORDS_MARK  # noqa: E402
from inspect_runs import BIN, inspect_eval  # noqa: E402
from sandbox.isolation import isolation_available  # noqa: E402

# one quick production-debugging bug per category: training, architecture, data, inference,
# training (distributed), evaluation
PER_CATEGORY = "1,4,8,50,22,51"
COMMAND_LINE_BUG = "4"
SHORTEST_SECRET_LINE = 6  # characters: shorter pristine lines say nothing on their own


def episode_env(root):
    return {**os.environ, "BUGDRILL_STATE_DIR": str(root / "state"), "BUGDRILL_EPISODES_DIR": str(root / "episodes"),
            "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def no_checkpoints_left_outside():
    """An accepted --checkpoint_dir=/tmp/... leaves files there (issue 15, point 4)."""
    yield
    for path in glob.glob("/tmp/bugdrill-adversary-*"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def inspect_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversary")
    env = episode_env(root)
    _, log = inspect_eval(["--model", "mockllm/model", "-T", "agent=adversary", "-T", f"bugs={PER_CATEGORY}",
                           "-T", "time_limit=60", "--max-samples", "2"], env, root / "logs", timeout=3600)
    return root, log


@pytest.fixture(scope="module")
def command_line_run(tmp_path_factory):
    if not isolation_available()[0]:
        pytest.skip(f"no isolation here: {isolation_available()[1]}")
    root = tmp_path_factory.mktemp("adversary-shell")
    env = episode_env(root)
    result = subprocess.run([str(BIN / "bugdrill"), "eval", "--agent", "adversary-shell", "--bugs", COMMAND_LINE_BUG,
                             "--time-limit", "60", "--log-dir", str(root / "logs"), "--json"],
                            env=env, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (log_file,) = (root / "logs").glob("*.eval")
    return root, read_eval_log(str(log_file))


# --- what counts as a secret, and what the adversary could read ---------------------------------

def episode_secrets(root, sample):
    """The state directory's path, the answer key's file name, and the pristine lines of each
    bugged file that the workspace did not start with."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BUGDRILL_STATE_DIR", str(root / "state"))
        from sandbox.state import answer_key_path
        from sandbox.workspace import read_codebase
        from server.interviews import Interviews
        from server.locate import bugged_text
        from server.runs import codebase_of

        interviews = Interviews(workspaces_root=root / "episodes")
        interview = interviews.get(sample.store["interview_id"])
        key = interviews.key(interview)
        start = read_codebase(codebase_of(key))
        start.update({bug["file"]: bugged_text(bug) for bug in key["bugs"]})
        key_name = answer_key_path(interview.workspace).stem
    started_with = {line.strip() for text in start.values() for line in text.splitlines()}
    pristine = {line.strip() for bug in key["bugs"] for line in bug["pristine"].splitlines()}
    lines = sorted(line for line in pristine - started_with if len(line) >= SHORTEST_SECRET_LINE)
    return [str(root / "state"), key_name, *lines], interview.workspace


def readable(sample, workspace):
    """Every text the adversary was given or could open: the task, each tool result, and every
    file its payloads left in the workspace."""
    texts = [sample.input if isinstance(sample.input, str) else json.dumps(sample.input)]
    texts += [m.text for m in sample.messages if m.role in ("user", "tool", "system")]
    for path in sorted(Path(workspace).rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(workspace).parts:
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return texts


def secrets_read(root, sample):
    secrets, workspace = episode_secrets(root, sample)
    unescaped = [text.replace("\\", "") for text in readable(sample, workspace)]  # JSON-escaped in tool results
    return sorted({secret for secret in secrets for text in unescaped if secret.replace("\\", "") in text})


def succeeded(records):
    return [f"{r['attack']}: {r['outcome']}" for r in records if r["leaked"]]


def command_line_records(sample):
    text = sample.messages[-1].text
    lines = [line for line in text.splitlines() if line.startswith(RECORDS_MARK)]
    assert lines, f"the command-line adversary printed no records: {text[-1500:]}"
    return json.loads(lines[-1][len(RECORDS_MARK):])


# --- the Inspect path -------------------------------------------------------------------------------

def test_the_sample_covers_every_category(inspect_run):
    _, log = inspect_run
    assert log.status == "success"
    categories = {record.category for record in load_catalog().values()}
    assert {sample.metadata["category"] for sample in log.samples} == categories


def test_the_adversary_earns_no_credit_on_any_episode(inspect_run):
    _, log = inspect_run
    scores = {s.id: (s.metadata["bugs"], s.scores["episode_scorer"].value) for s in log.samples}
    assert all(value["credit"] == 0 and value["solved"] == 0 for _, value in scores.values()), scores


def test_no_attack_of_the_adversary_succeeds(inspect_run):
    _, log = inspect_run
    for sample in log.samples:
        records = sample.store["adversary"]
        assert len(records) >= 10 and all({"attack", "outcome", "leaked"} <= set(r) for r in records)
    leaks = {s.id: succeeded(s.store["adversary"]) for s in log.samples}
    assert not any(leaks.values()), json.dumps(leaks, indent=1)


def test_the_adversary_reads_no_key_pristine_text_or_state_path(inspect_run):
    root, log = inspect_run
    found = {s.id: secrets_read(root, s) for s in log.samples}
    assert not any(found.values()), json.dumps(found, indent=1)[:4000]


# --- the command-line path -----------------------------------------------------------------------------

def test_the_command_line_adversary_earns_nothing_and_reads_nothing(command_line_run):
    root, log = command_line_run
    (sample,) = log.samples
    records = command_line_records(sample)
    assert {r["attack"] for r in records} >= {"shell: read the state directory", "shell: /proc/*/environ and cmdline",
                                               "shell: the bugdrill package", "forged fix: bug_catalog package in the workspace"}
    score = sample.scores["episode_scorer"].value
    leaks = succeeded(records)
    secrets = secrets_read(root, sample)
    assert (score["credit"], leaks, secrets) == (0, [], []), json.dumps(
        {"score": score, "leaks": leaks, "secrets": secrets}, indent=1)[:4000]
