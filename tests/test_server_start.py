"""The server's start: `bugdrill serve` answers initialize and tools/list without importing torch or
libcst (a tool that needs them imports them when it runs), says its version, and `bugdrill bench`
prints how long a client waits for tools/list (a figure, never asserted: this machine is shared)."""

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from mcp import Client

REPO = Path(__file__).resolve().parents[1]

# a fresh interpreter: the test process itself has imported torch long ago
BUILD_AND_LIST = """
import json, sys
import anyio
from mcp import Client
from server.app import build_server

async def list_both():
    tools = {}
    for role in ("interviewer", "candidate"):
        async with Client(build_server(role)) as client:
            tools[role] = len((await client.list_tools()).tools)
    return tools

tools = anyio.run(list_both)
print(json.dumps({"tools": tools, "imported": [m for m in ("torch", "libcst") if m in sys.modules]}))
"""


def test_the_server_starts_and_lists_its_tools_without_torch_or_libcst(tmp_path):
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run([sys.executable, "-c", BUILD_AND_LIST], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tools"]["interviewer"] > 0 and report["tools"]["candidate"] > 0
    assert report["imported"] == [], f"imported before any tool ran: {report['imported']}"


@pytest.mark.anyio
async def test_server_info_names_the_package_version_over_http(tmp_path):
    from test_server_transports import environment, free_port, wait_for

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--http", "--port", str(port)],
                               env=environment(tmp_path / "state"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=REPO)
    try:
        wait_for(port, process)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            assert client.server_info.name == "bugdrill"
            assert client.server_info.version == version("bugdrill")
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_bench_prints_the_time_from_start_to_tools_list(tmp_path):
    from server.bench import server_start

    lines = []
    server_start(lines.append, starts=1, state_dir=tmp_path / "state")
    assert [line.split(":")[0] for line in lines] == ["server start (interviewer)", "server start (candidate)"]
    for line in lines:
        seconds = float(re.search(r": ([0-9.]+) s from process start to the tools/list answer over stdio", line)[1])
        assert seconds > 0, line


def test_listing_the_catalogue_reads_its_records_without_torch_or_libcst(tmp_path):
    """`bugdrill bugs` prints records: the edits and checks (which import torch and libcst) stay unloaded."""
    program = ("import runpy, sys, io, contextlib\n"
               "sys.argv = ['bugdrill', 'bugs', '--json']\n"
               "out = io.StringIO()\n"
               "with contextlib.redirect_stdout(out):\n"
               "    try:\n"
               "        runpy.run_module('server.cli', run_name='__main__')\n"
               "    except SystemExit:\n"
               "        pass\n"
               "import json\n"
               "print(json.dumps({'bugs': len(json.loads(out.getvalue())),\n"
               "                  'imported': [m for m in ('torch', 'libcst') if m in sys.modules]}))\n")
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["bugs"] == 52 and report["imported"] == [], report
