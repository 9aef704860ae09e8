"""An isolated agent: what a shell started as `bugdrill eval --agent` starts its agent can
and cannot reach. Every assertion is on what the shell itself printed (or on the workspace
it edited), so the tests show the agent's view, not our intentions.

Needs root, util-linux and working PID and mount namespaces; skipped elsewhere with the
reason. Each test is one short agent run (about a second).
"""

import http.server
import json
import os
import shlex
import subprocess
import sys
import socket
import stat
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import sandbox
from sandbox import isolation, runner
from sandbox.isolation import AgentSpec, IsolationError, Limits, run_agent

AVAILABLE, WHY = isolation.isolation_available()
needs_isolation = pytest.mark.skipif(not AVAILABLE, reason=f"agent isolation unavailable here: {WHY}")
VENV_BIN = os.path.dirname(sys.executable)
SHELL_ADDS = {"PWD", "OLDPWD", "SHLVL", "_"}  # what /bin/sh puts in its own environment


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    path = tmp_path / "state"
    (path / "keys").mkdir(parents=True)
    (path / "keys" / "marker.json").write_text('{"bug": "the answer"}')
    monkeypatch.setenv("BUGDRILL_STATE_DIR", str(path))
    monkeypatch.setattr(runner, "KILL_GRACE_S", 0.5)
    return path


@pytest.fixture
def workspace(state):
    # inside the state directory, as the server's own workspaces are: bound before it is hidden
    path = state / "workspaces" / "ws1"
    path.mkdir(parents=True)
    (path / "train.py").write_text("print('hello')\n")
    return path


def agent(workspace, command, wall_s=20.0, memory_mb=1024, **fields):
    fields.setdefault("mcp_url", "http://127.0.0.1:9/mcp")
    fields.setdefault("episode_parent", str(workspace.parents[2]))  # the test's tmp_path
    result = run_agent(AgentSpec(
        command=command, workspace=str(workspace), task_text="Find the bug.\n",
        limits=Limits(wall_s=wall_s, memory_mb=memory_mb, disk_mb=256, output_mb=5), **fields,
    ))
    return result, Path(result.stdout_path).read_text(), Path(result.stderr_path).read_text()


def cmdlines():
    """Every process's command line, as seen from outside the isolation."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                found[int(name)] = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
    return found


def visible_outside(pid, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return True
        time.sleep(0.05)
    return False


@needs_isolation
def test_the_bugdrill_packages_cannot_be_imported_or_read(workspace):
    repo = Path(sandbox.__file__).resolve().parents[1]
    script = (
        "import importlib.util, sys\n"
        "for name in ('server', 'sandbox', 'bug_catalog', 'evals'):\n"
        "    print(name, importlib.util.find_spec(name))\n"
        "import server\n"
    )
    result, out, err = agent(workspace, (
        f"command -v python3; python3 -c {shlex.quote(script)}; echo python3-status=$?; "
        f"{sys.executable} -c 'import server; print(\"IMPORTED\")'; echo venv-python-status=$?; "
        f"echo listing:; ls -A {repo}; echo end"
    ))
    assert result.state == "finished", (result, err)
    for name in ("server", "sandbox", "bug_catalog", "evals"):
        assert f"{name} None" in out  # the agent's python finds no such package
    assert "ModuleNotFoundError: No module named 'server'" in err
    assert "python3-status=1" in out
    assert "IMPORTED" not in out and "venv-python-status=0" not in out  # the caller's venv python fails too
    assert "listing:\nend" in out  # the source checkout looks empty


@needs_isolation
def test_the_hiding_cannot_be_undone_from_inside(workspace):
    repo = Path(sandbox.__file__).resolve().parents[1]
    result, out, err = agent(workspace, (
        f"unshare --user --map-root-user --mount sh -c 'umount -l {repo}; echo listing:; ls -A {repo}; echo end'; "
        f"su -c id root < /dev/null; echo su-status=$?"
    ))
    assert result.state == "finished", (result, err)
    # a mount namespace of its own cannot lift mounts it inherited locked, and no setuid
    # program gives back root
    assert "listing:\nend" in out or "listing:" not in out
    assert "su-status=0" not in out and "uid=0" not in out


@needs_isolation
def test_the_state_directory_is_hidden(workspace, state):
    result, out, err = agent(workspace, f"ls -A {state}; cat {state}/keys/marker.json; echo status=$?")
    assert result.state == "finished", (result, err)
    assert "the answer" not in out and "keys" not in out
    assert "status=1" in out and "No such file" in err
    assert (state / "keys" / "marker.json").is_file()  # only hidden, never touched


@needs_isolation
def test_the_bugdrill_command_cannot_run_so_reveal_is_unreachable(workspace):
    result, out, err = agent(workspace, (
        "bugdrill reveal --workspace .; echo on-path-status=$?; "
        f"{VENV_BIN}/bugdrill reveal --workspace .; echo absolute-status=$?; "
        f"wc -c < {VENV_BIN}/bugdrill || true"
    ), path=f"{VENV_BIN}:{isolation.DEFAULT_PATH}")
    assert result.state == "finished", (result, err)
    # covered by /dev/null, no program: the shell skips it on PATH (127) and cannot execute it by
    # path (126), and it has no content to read; where the venv lives under /tmp, the agent's
    # private /tmp has no such path at all (127, nothing to count)
    assert "on-path-status=127" in out
    covered = "absolute-status=126" in out and out.strip().endswith("0")
    absent = "absolute-status=127" in out and "No such file" in err
    assert covered or absent, (out, err)
    assert "usage" not in (out + err).lower() and "bug" not in out


@needs_isolation
def test_proc_shows_only_the_agents_own_processes(workspace):
    outside = subprocess.Popen(["sleep", "2718.28"])  # stands in for the server's command line
    try:
        assert visible_outside(outside.pid, "2718.28")
        result, out, err = agent(workspace, (
            "for p in /proc/[0-9]*; do echo \"$(basename $p): $(tr '\\0' ' ' < $p/cmdline)\"; done"
        ))
    finally:
        outside.kill()
        outside.wait()
    assert result.state == "finished", (result, err)
    lines = [line for line in out.splitlines() if line.strip()]
    assert "2718.28" not in out and "sandbox.supervise" not in out and "unshare" not in out
    assert lines[0].startswith("1: /bin/sh -c")  # the agent's shell is the namespace's first process
    assert len(lines) <= 4, lines  # the shell, its subshells and tr: nothing else


@needs_isolation
def test_the_workspace_is_readable_and_writable_and_edits_show_outside(workspace):
    owner = workspace.stat().st_uid
    result, out, err = agent(workspace, (
        "pwd; echo $BUGDRILL_WORKSPACE; cat train.py; echo \"print('fixed')\" > train.py; "
        "mkdir notes && echo seen > notes/n.txt; git init -q . 2>&1 | head -1; echo done"
    ))
    assert result.state == "finished", (result, err)
    assert out.splitlines()[:3] == ["/episode/workspace", "/episode/workspace", "print('hello')"]
    assert (workspace / "train.py").read_text() == "print('fixed')\n"
    assert (workspace / "notes" / "n.txt").read_text() == "seen\n"
    # ownership goes back to the workspace's owner, for what the agent made as well
    assert {p.stat().st_uid for p in [workspace, *workspace.rglob("*")]} == {owner}


@needs_isolation
def test_giving_the_workspace_back_follows_no_link_and_makes_no_root_program(workspace, tmp_path):
    target = tmp_path / "outside.txt"  # someone else's file, which a planted link names
    target.write_text("not the agent's")
    os.chown(target, 12345, 12345)
    result, out, err = agent(workspace, (
        f"ln -s {target} link; cp /bin/true tool && chmod u+s,g+s tool; ls -l tool; echo done"
    ))
    assert result.state == "finished" and "done" in out, (result, err)
    assert out.split()[0].startswith("-rwsr-s")  # the agent made a set-ID program of its own
    tool = (workspace / "tool").stat()
    assert tool.st_uid == 0 and not tool.st_mode & (stat.S_ISUID | stat.S_ISGID)  # root's now, and plain
    assert (workspace / "link").is_symlink() and target.stat().st_uid == 12345


@needs_isolation
def test_a_loopback_server_started_outside_is_reachable(workspace):
    class Pong(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"pong from outside")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Pong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
        fetch = 'import os, urllib.request as u; print(u.urlopen(os.environ["BUGDRILL_MCP_URL"]).read().decode())'
        result, out, err = agent(workspace, f"python3 -c '{fetch}'", mcp_url=url)
    finally:
        server.shutdown()
    assert result.state == "finished", (result, err)
    assert "pong from outside" in out


@needs_isolation
def test_a_candidate_role_mcp_server_answers_the_agent_and_its_command_line_stays_hidden(workspace, state):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [f"{VENV_BIN}/bugdrill", "serve", "--role", "candidate", "--http", "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    initialize = (
        "import json, os, urllib.request\n"
        "body = json.dumps({'jsonrpc': '2.0', 'id': 1, 'method': 'initialize', 'params': {'protocolVersion': "
        "'2025-06-18', 'capabilities': {}, 'clientInfo': {'name': 'agent', 'version': '0'}}}).encode()\n"
        "request = urllib.request.Request(os.environ['BUGDRILL_MCP_URL'], body, {'Content-Type': 'application/json', "
        "'Accept': 'application/json, text/event-stream'})\n"
        "print(urllib.request.urlopen(request).read().decode())\n"
    )
    try:
        assert wait_for_http(port), "the server did not come up"
        result, out, err = agent(
            workspace,
            f"python3 -c {shlex.quote(initialize)}; echo ---procs---; cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
            mcp_url=f"http://127.0.0.1:{port}/mcp",
        )
    finally:
        server.terminate()
        server.wait()
    assert result.state == "finished", (result, err)
    answer, _, processes = out.partition("---procs---\n")
    assert '"id":1,"result"' in answer and "candidate" in answer  # the server's initialize answer
    assert "serve" not in processes and "bugdrill" not in processes


def wait_for_http(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/mcp", timeout=1)
            return True
        except urllib.error.HTTPError:
            return True  # it answers, if only to refuse a bare GET
        except OSError:
            time.sleep(0.1)
    return False


@needs_isolation
def test_the_environment_holds_only_the_contract(workspace, state):
    result, out, err = agent(
        workspace, "env; echo ---; cat $BUGDRILL_TASK_FILE; echo ---; cat $HOME/.mcp.json; echo ---; id -un",
        env={"AGENT_API_KEY": "k"}, mcp_url="http://127.0.0.1:8123/mcp",
    )
    assert result.state == "finished", (result, err)
    env_text, task, config, user = out.split("---\n")
    env = dict(line.split("=", 1) for line in env_text.splitlines())
    contract = {"PATH", "HOME", "LANG", "TMPDIR", "USER", "BUGDRILL_WORKSPACE", "BUGDRILL_MCP_URL",
                "BUGDRILL_MCP_CONFIG", "BUGDRILL_TASK_FILE", "AGENT_API_KEY"}
    assert set(env) - SHELL_ADDS == contract
    assert env["BUGDRILL_MCP_URL"] == "http://127.0.0.1:8123/mcp" and env["HOME"] == "/episode/home"
    assert str(state) not in env_text
    assert task == "Find the bug.\n"
    assert json.loads(config) == {"mcpServers": {"bugdrill": {"type": "http", "url": "http://127.0.0.1:8123/mcp"}}}
    assert user.strip() == isolation.AGENT_USER


@needs_isolation
def test_an_agent_command_that_does_not_exist_is_a_clear_result(workspace):
    result, out, err = agent(workspace, "no-such-agent-cli --headless")
    assert (result.state, result.exit_code, result.limit_hit) == ("failed", 127, None)
    assert "agent command was not found" in result.message and "no-such-agent-cli" in result.message
    assert result.wall_s < 10


@needs_isolation
def test_an_agent_over_its_memory_limit_is_killed(workspace):
    result, out, err = agent(
        workspace, "python3 -c 'import time; block = b\"x\" * (400 << 20); time.sleep(30)'", memory_mb=150,
    )
    assert (result.state, result.limit_hit) == ("memory_limit", "memory"), result
    assert result.wall_s < 10


@needs_isolation
def test_an_isolation_that_cannot_be_made_is_an_error_not_an_agent_failure(workspace, monkeypatch):
    real = isolation.hidden_paths
    monkeypatch.setattr(isolation, "hidden_paths", lambda extra: real(extra) + [Path("/no/such/dir/file")])
    with pytest.raises(IsolationError, match="could not hide /no/such/dir/file"):
        agent(workspace, "echo the agent never runs")
    assert workspace.stat().st_uid == os.getuid()  # the workspace was given back


@needs_isolation
def test_a_hanging_agent_is_killed_at_its_wall_limit_leaving_nothing(workspace):
    result, out, err = agent(workspace, "sleep 3141.5 & setsid sleep 3141.6 & sleep 3141.7", wall_s=1.5)
    assert (result.state, result.limit_hit) == ("timed_out", "wall")
    assert result.wall_s < 10
    assert not [c for c in cmdlines().values() if "3141." in c]


def test_without_root_isolation_says_what_to_do(monkeypatch):
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1000)
    ok, why = isolation._check_available()
    assert not ok and "root" in why
    monkeypatch.setattr(isolation, "_available", (False, why))
    with pytest.raises(IsolationError, match="root"):
        run_agent(AgentSpec(command="true", workspace=".", mcp_url="http://127.0.0.1:1/mcp", task_text="t"))


def test_bugdrill_variables_cannot_be_passed_to_the_agent(workspace, monkeypatch):
    monkeypatch.setattr(isolation, "_available", (True, ""))
    with pytest.raises(IsolationError, match="BUGDRILL_STATE_DIR"):
        run_agent(AgentSpec(command="true", workspace=str(workspace), mcp_url="http://127.0.0.1:1/mcp",
                            task_text="t", env={"BUGDRILL_STATE_DIR": "/x"}))


def test_a_workspace_that_holds_something_hidden_is_refused(tmp_path, state, monkeypatch):
    monkeypatch.setattr(isolation, "_available", (True, ""))
    with pytest.raises(IsolationError, match="which the agent may not see"):
        run_agent(AgentSpec(command="true", workspace=str(tmp_path), mcp_url="http://127.0.0.1:1/mcp", task_text="t"))
    assert state.stat().st_uid == os.getuid()  # refused before anything was handed over
