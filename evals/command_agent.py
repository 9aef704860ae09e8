"""Agents that are command-line programs with a shell of their own (Claude Code headless, a
script): the episode's candidate-role server over streamable HTTP on loopback, and the agent
run isolated by sandbox/isolation.py (its docstring is the agent's contract). Scored by the
same scorer as any other agent; the transcript holds the agent's exit and output tail, and
the interview's own events (runs, diagnoses, edits, verifications) are in the score."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from inspect_ai.model import ChatMessageAssistant
from inspect_ai.solver import solver

from sandbox.isolation import AgentSpec, isolation_available, run_agent
from sandbox.runner import Limits
from sandbox.state import state_dir

SERVER_START_S = 60
OUTPUT_TAIL = 4000


def require_isolation():
    """Fail before any episode starts where agents cannot be isolated."""
    ok, why = isolation_available()
    if not ok:
        raise ValueError(f"cannot run a command-line agent here: {why}")


@solver
def command_agent(command, time_limit_minutes):
    async def solve(state, generate):
        from evals.task import episode_workspace  # evals.task imports this module

        interview_id = state.store.get("interview_id")

        def episode():  # in a worker thread: the server's start and the agent's run both block
            with _candidate_server(interview_id) as url:
                return run_agent(AgentSpec(
                    command=command, workspace=str(episode_workspace(interview_id)), mcp_url=url,
                    task_text=state.input_text, label=f"agent {interview_id}",
                    # the episode's limit; the sample has a minute more (setup), so this
                    # limit stops the agent cleanly and the episode is still scored
                    limits=Limits(wall_s=time_limit_minutes * 60)))

        result = await anyio.to_thread.run_sync(episode)
        output = _tail(result.stdout_path)
        shutil.rmtree(result.episode_dir, ignore_errors=True)  # the agent's home and task copy: done with
        state.messages.append(ChatMessageAssistant(content=(
            f"[agent command ended: {result.message}; exit {result.exit_code}, {result.wall_s:.0f} s]\n"
            f"{output}\n[stderr tail]\n{_tail(result.stderr_path, 1500)}")))
        state.output.completion = output
        return state

    return solve


class _candidate_server:
    """A candidate-role server bound to one interview, on a free loopback port, for as long as
    the block runs; its log goes to a temporary file shown in the error if it fails to start."""

    def __init__(self, interview_id):
        self.interview_id = interview_id

    def __enter__(self):
        port = _free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="bugdrill-server-", suffix=".log", delete=False)
        env = {**os.environ, "BUGDRILL_STATE_DIR": str(state_dir())}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--role", "candidate", "--interview", self.interview_id,
             "--http", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_S
        while not _listening(port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the candidate server did not start: {Path(self.log.name).read_text()[-800:]}")
            time.sleep(0.2)
        return f"http://127.0.0.1:{port}/mcp"

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _tail(path, limit=OUTPUT_TAIL):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]
