"""A production-debugging interview through a real client session (in process): the run with
progress notifications and its incident summary, views and a plot, one run at a time, a fix
verified by behaviour and a short run, and bad input to the training tools."""

import base64

import anyio
import pytest
from mcp import Client
from mcp.types import ImageContent

from sandbox.workspace import load_answer_key
from server.app import build_server
from mcp_calls import call, error

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


async def test_a_whole_production_debugging_interview(state):
    progress = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug="zero-grad", variant=2,
                             seed=3)
        interview = started["interview_id"]
        result = await client.call_tool("run_training", {"interview_id": interview, "steps": 40},
                                        progress_callback=on_progress)
        assert not result.is_error, result.content[0].text
        run = result.structured_content
        assert run["state"] == "finished" and "not_learning" in run["symptoms"], run
        assert "barely moved" in run["summary"]
        assert progress and any("training" in m for _, _, m in progress)

        log = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="log", every=10)
        assert "baseline loss" in log["text"]
        grads = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="grad_norms")
        assert "per parameter" in grads["text"]
        plot = await client.call_tool("get_plot", {"interview_id": interview, "run_id": run["run_id"],
                                                    "view": "log"})
        assert not plot.is_error and isinstance(plot.content[0], ImageContent)
        (state / "log.png").write_bytes(base64.b64decode(plot.content[0].data))
        listed = await call(client, "list_runs", interview_id=interview)
        assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]

        # the fix, written as the candidate would: the pristine text back in place
        bug = load_answer_key(started["workspace"])["bugs"][0]
        await call(client, "edit_file", interview_id=interview, path=bug["file"], content=bug["pristine"])
        verified = await call(client, "verify_fix", interview_id=interview)
        assert verified["fixed"], [c for c in verified["checks"] if not c["passed"]]
        assert any(c["name"] == "runs against the pristine code" and c["passed"] for c in verified["checks"])


async def test_training_tools_refuse_bad_input(state):
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug="lr-not-decayed", seed=1)
        interview = started["interview_id"]
        assert "has no run" in await error(client, "get_view", interview_id=interview, run_id="t2026", view="log")
        assert await error(client, "run_training", interview_id=interview, steps=0)
        assert await error(client, "run_training", interview_id=interview, steps=10**9)
        assert await error(client, "run_training", interview_id=interview, args=["; rm -rf /"])
        assert await error(client, "run_training", interview_id=interview, scenario="moon")
        assert "unknown interview" in await error(client, "run_training", interview_id="0123456789ab")

        # two runs at once on one interview: the second is refused, the first completes
        results = {}

        async def run(name):
            results[name] = await client.call_tool("run_training", {"interview_id": interview, "steps": 20})

        async with anyio.create_task_group() as group:
            group.start_soon(run, "first")
            await anyio.sleep(1.0)
            group.start_soon(run, "second")
        outcomes = sorted(r.is_error for r in results.values())
        assert outcomes == [False, True], [r.content[0].text for r in results.values()]
        refused = next(r for r in results.values() if r.is_error)
        assert "already in progress" in refused.content[0].text
        await call(client, "end_interview", interview_id=interview)
        assert "ended" in await error(client, "run_training", interview_id=interview)
