"""A client nobody here wrote: the MCP Inspector CLI (npm registry) against `bugdrill serve`.

Each call starts a fresh server over stdio on the same state directory, so this also shows an
interview carrying over from one server process to the next. Inspector 0.15.0 (the version that
runs on Node 20) exits 0 even when a tool fails, so every result's isError is checked here. Its
requests time out at the SDK's 60 s with no option to raise it, so the interview here ends with a
diagnosis and a reveal, not verify_fix (every check and a short run: over a minute on a loaded
2-core machine); verify_fix is driven by the Python client in test_server_*.py.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"
pytestmark = pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")


@pytest.fixture(scope="module", autouse=True)
def npm_registry():
    """npx fetches the Inspector from the npm registry: without one, skip and say so (asked here, when
    the test runs, not when the file is collected)."""
    try:
        ping = subprocess.run(["npm", "ping", "--fetch-timeout=5000", "--fetch-retries=0"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"the npm registry cannot be reached: npm ping: {error}")
    if ping.returncode != 0:
        errors = [line for line in ping.stderr.splitlines() if line.startswith("npm error")]
        answer = next((line for line in errors if line.startswith("npm error code")), errors[0] if errors else "")
        pytest.skip(f"the npm registry cannot be reached: npm ping: {answer or f'exit status {ping.returncode}'}")


def inspector(state, method, tool=None, **arguments):
    command = ["npx", "-y", INSPECTOR, "--cli", sys.executable, "-m", "server.cli", "serve", "--method", method]
    if tool:
        command += ["--tool-name", tool]
    for name, value in arguments.items():
        command += ["--tool-arg", f"{name}={value}"]
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(state), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-1500:]
    reply = json.loads(result.stdout)
    if method == "tools/call":
        assert reply["isError"] is False, f"{tool} failed: {reply['content'][0]['text']}"
        return reply["structuredContent"]
    return reply


def test_the_inspector_lists_tools_and_runs_an_interview(tmp_path):
    tools = {t["name"] for t in inspector(tmp_path, "tools/list")["tools"]}
    assert {"start_interview", "run_training", "get_view", "verify_fix", "reveal"} <= tools

    started = inspector(tmp_path, "tools/call", "start_interview", kind="production_debugging",
                        bug="lr-not-decayed", seed=1)
    interview = started["interview_id"]
    run = inspector(tmp_path, "tools/call", "run_training", interview_id=interview, steps=30)
    assert run["state"] == "finished" and "lr_schedule_off" in run["symptoms"], run
    view = inspector(tmp_path, "tools/call", "get_view", interview_id=interview, run_id=run["run_id"], view="log")
    assert "baseline lr" in view["text"]
    wrong = inspector(tmp_path, "tools/call", "submit_diagnosis", interview_id=interview, file="picochat/tokenizer.py",
                      line=1, what_is_wrong="the tokenizer drops the last byte of every story")
    assert wrong["location_right"] is False and wrong["diagnoses_submitted"] == 1
    revealed = inspector(tmp_path, "tools/call", "reveal", interview_id=interview)
    assert [b["slug"] for b in revealed["bugs"]] == ["lr-not-decayed"]
    ended = inspector(tmp_path, "tools/call", "end_interview", interview_id=interview)
    assert ended["verdict"] == "revealed" and not ended["found"]
