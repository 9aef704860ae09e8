"""`bugdrill serve` as a client really meets it: a subprocess over stdio, and over streamable HTTP.
A stdio server killed mid-interview and started again carries on with the same interview."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_calls import call

pytestmark = pytest.mark.anyio


def environment(state):
    return {**os.environ, "BUGDRILL_STATE_DIR": str(state), "OMP_NUM_THREADS": "1"}


def stdio(state, *args):
    return StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve", *args],
                                 env=environment(state), cwd=str(Path(__file__).resolve().parents[1]))


async def short_interview(client, bug):
    """start, snippet, a diagnosis and a hint; returns the interview id."""
    started = await call(client, "start_interview", kind="code_review", bug=bug, seed=4)
    interview = started["interview_id"]
    window = (await call(client, "get_snippet", interview_id=interview))["snippets"][0]
    graded = await call(client, "submit_diagnosis", interview_id=interview, file=window["path"],
                        line=window["first_line"], what_is_wrong="something is off here")
    assert graded["cause_right"] is False
    assert (await call(client, "get_hint", interview_id=interview))["number"] == 1
    return interview


def parent_of(pid):
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def serve_processes(marker):
    """Pids of `bugdrill serve` processes whose command line holds `marker`; a child the server
    has forked and not yet exec'd (its supervisor starting) still shows the server's command line,
    so a pid whose parent is also listed is left out."""
    found = set(_matching(marker))
    return sorted(pid for pid in found if parent_of(pid) not in found)


def _matching(marker):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "server.cli serve" in command and marker in command:
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the server process through /proc")
async def test_stdio_interview_survives_killing_the_server(tmp_path):
    state, workspaces = tmp_path / "state", tmp_path / "stdio-workspaces"
    killed = False
    try:
        async with Client(stdio(state, "--workspaces", str(workspaces))) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"start_interview", "get_snippet", "reveal", "verify_fix"} <= tools
            interview = await short_interview(client, bug=1)
            (pid,) = serve_processes(str(workspaces))
            os.kill(pid, signal.SIGKILL)
            killed = True
            await client.call_tool("interview_status", {"interview_id": interview})
    except Exception:  # the connection dies with the server
        assert killed
    assert killed

    async with Client(stdio(state, "--role", "candidate", "--interview", interview)) as client:
        (status,) = (await call(client, "interview_status"))["interviews"]
        assert status["state"] == "open" and status["hints_used"] == 1 and status["diagnoses"] == 1
        assert (await call(client, "get_hint"))["number"] == 2
        assert (await call(client, "end_interview"))["verdict"] == "unsolved"
    async with Client(stdio(state)) as client:
        (status,) = (await call(client, "interview_status", interview_id=interview))["interviews"]
        assert [e["kind"] for e in status["events"]] == ["view", "diagnosis", "hint", "hint", "end"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port, process, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"no server on port {port}")


async def test_streamable_http_interview(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--http", "--port", str(port)],
                               env=environment(tmp_path / "state"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=str(Path(__file__).resolve().parents[1]))
    try:
        wait_for(port, process)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            interview = await short_interview(client, bug=5)
            run = await call(client, "run_training", interview_id=interview, steps=20)
            assert run["state"] == "finished" and run["summary"]
            view = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="grad_norms")
            assert "global gradient norm" in view["text"]
            revealed = await call(client, "reveal", interview_id=interview)
            assert revealed["bugs"][0]["id"] == 5
            assert (await call(client, "end_interview", interview_id=interview))["verdict"] == "revealed"
            bad = await client.call_tool("read_file", {"interview_id": interview, "path": "../x"})
            assert bad.is_error
            assert (await call(client, "list_bugs"))["count"] > 0
    finally:
        process.terminate()
        stdout, _ = process.communicate(timeout=10)
    assert stdout == b"", "stdout is the protocol's alone"


def test_serving_an_unknown_interview_is_refused_at_start(tmp_path):
    result = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--role", "candidate", "--interview",
                             "0123456789ab"], env=environment(tmp_path / "state"), capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown interview" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the server process through /proc")
async def test_killing_the_server_mid_run_loses_no_finished_run(tmp_path):
    state, workspaces = tmp_path / "state", tmp_path / "run-workspaces"
    killed = False
    try:
        async with Client(stdio(state, "--workspaces", str(workspaces))) as client:
            started = await call(client, "start_interview", kind="production_debugging", bug="lr-not-decayed", seed=1)
            interview = started["interview_id"]
            finished = await call(client, "run_training", interview_id=interview, steps=20)
            assert finished["state"] == "finished"

            async def kill_soon():
                nonlocal killed
                # the same request again: its baseline is cached, so the third training record is this run
                while len(list((state / "trainings").glob("*.json"))) < 3:
                    await anyio.sleep(0.1)
                (pid,) = serve_processes(str(workspaces))
                os.kill(pid, signal.SIGKILL)
                killed = True

            async with anyio.create_task_group() as group:
                group.start_soon(kill_soon)
                await client.call_tool("run_training", {"interview_id": interview, "steps": 20})
    except Exception:  # the connection dies with the server
        assert killed
    assert killed

    async with Client(stdio(state)) as client:
        runs = (await call(client, "list_runs", interview_id=interview))["runs"]
        assert [r["state"] for r in runs] == ["finished", "interrupted"], runs
        view = await call(client, "get_view", interview_id=interview, run_id=runs[0]["run_id"], view="log")
        assert "baseline lr" in view["text"]
        again = await call(client, "run_training", interview_id=interview, steps=20)
        assert again["state"] == "finished"
