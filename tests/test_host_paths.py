"""What a candidate is shown of a crash names the workspace's files relative to it and never a
host path: not the workspace's, not the state directory's, not the jail's (/episode/...).

The workspace's code is made to crash on import, printing where its data directory and its
working directory are; the run's stderr view, the run report, list_runs and verify_fix's check
failures must say `scripts/...`, `picochat/...`, `$PICOCHAT_BASE_DIR` and `.` instead. Once in
the jail (paths as /episode/workspace, /episode/rw/N) and once on the honour system (host
paths, the data directory inside the state directory)."""

import json

import pytest
from mcp import Client

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks
from sandbox import codebases, jail
from sandbox.runner import RunSpec
from sandbox.shown_paths import STATE, for_candidate, run_places
from server.app import build_server
from server.interviews import StageResult
from mcp_calls import call

pytestmark = pytest.mark.anyio

CRASH = ('import os\n'
         'raise RuntimeError("no data in " + os.environ.get("PICOCHAT_BASE_DIR", "?") + " from " + os.getcwd())\n')


def isolation_modes():
    modes = [pytest.param("off", id="honour-system")]
    try:
        if jail.mode() == "isolated":
            modes.append(pytest.param("required", id="jail"))
    except jail.JailError:
        pass
    return modes


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """One state directory for the module: both modes' runs share the pristine baseline."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("host-paths") / "state"
        patch.setenv("BUGDRILL_STATE_DIR", str(path))
        patch.setenv("OMP_NUM_THREADS", "1")
        yield path


def own_check(interview, key, report=None):
    """verify_fix's check of the injected bug alone (bug_checks runs all 52: minutes, no more paths)."""
    (bug,) = key["bugs"]
    name = codebases.of_key(key).check_for(load_catalog()[bug["id"]])
    outcome = run_checks(str(interview.workspace), [name])[name]
    return [StageResult(name, outcome["passed"], outcome["detail"], bug["id"])]


def text_of(result):
    return "\n".join(c.text for c in result.content if c.type == "text") + json.dumps(result.structured_content)


@pytest.mark.parametrize("isolation", isolation_modes())
async def test_a_crash_is_shown_with_workspace_relative_paths_only(state, monkeypatch, isolation):
    monkeypatch.setenv("BUGDRILL_ISOLATION", isolation)
    server = build_server("interviewer")
    server.bugdrill.verify_stages = [own_check]
    async with Client(server) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug=1, variant=1, seed=3)
        interview, workspace = started["interview_id"], started["workspace"]
        await call(client, "edit_file", interview_id=interview, path="picochat/__init__.py", content=CRASH)
        shown = {}
        run = await client.call_tool("run_training", {"interview_id": interview, "steps": 2})
        shown["run_training"] = text_of(run)
        run_id = run.structured_content["run_id"]
        stderr = await client.call_tool("get_view", {"interview_id": interview, "run_id": run_id, "view": "stderr"})
        shown["stderr"] = text_of(stderr)
        shown["list_runs"] = text_of(await client.call_tool("list_runs", {"interview_id": interview}))
        shown["verify_fix"] = text_of(await client.call_tool("verify_fix", {"interview_id": interview}))

    assert run.structured_content["state"] == "failed", shown["run_training"]
    view = stderr.structured_content["text"]
    assert 'File "picochat/__init__.py", line 2' in view, view
    assert "RuntimeError: no data in $PICOCHAT_BASE_DIR from ." in view, view
    assert "raised at picochat/__init__.py:2" in run.structured_content["summary"]
    assert "RuntimeError: no data in " in shown["verify_fix"] and " from ." in shown["verify_fix"]
    for where, text in shown.items():
        for host in (workspace, str(state), str(state.resolve()), jail.ROOT + "/"):
            assert host not in text, f"{where} shows {host}: {text[:2000]}"
        assert STATE not in text, f"{where} names a path in the state directory: {text[:2000]}"


def test_the_jails_places_are_named_as_the_code_knows_them(tmp_path):
    """The jail's /episode/rw/N are the run's directories in runner.jail_plan's order: a data
    directory is shown as the variable that holds it, whichever N it got."""
    workspace, data = tmp_path / "ws", tmp_path / "state" / "trainings" / "t1" / "data"
    spec = RunSpec(workspace=str(workspace), argv=["-m", "scripts.base_train"], env={"PICOCHAT_BASE_DIR": str(data)},
                   quota_dirs=[str(data)])
    places = run_places(tmp_path / "state" / "runs" / "r1", spec.model_dump())
    shown = for_candidate('File "/episode/workspace/picochat/gpt.py", line 3; saved /episode/rw/1/ckpt.pt; '
                          f"wrote {data}/corpus.txt in {workspace}", places)
    assert shown == ('File "picochat/gpt.py", line 3; saved $PICOCHAT_BASE_DIR/ckpt.pt; '
                     "wrote $PICOCHAT_BASE_DIR/corpus.txt in .")
