"""The reference agent (no LLM) plays whole interviews through a real MCP client session on a
candidate server bound to one interview; what it achieved is read from what the grader recorded
(the interview's diagnosis events), not from the agent's own account.

Production debugging runs train for real (about 10-40 s each on 2 cores; baselines are cached in
one state directory shared by this module's tests)."""

import subprocess
import sys

import pytest
from mcp import Client

from bug_catalog.catalog import get_bug
from evals.reference_agent import MAX_CALLS, MAX_DIAGNOSES, ToolFailed, run_reference_agent
from evals.tool_text import read_result
from server.app import build_server
from server.interviews import Interviews
from server.store import Store

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """One state directory for the module, so runs of the same request share a cached baseline."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("reference-agent") / "state"
        patch.setenv("BUGDRILL_STATE_DIR", str(path))
        patch.setenv("OMP_NUM_THREADS", "1")
        yield path


def start(kind, bug=None, variant=None, seed=7):
    """An interview with one bug, or with none (a control) where the server supports it."""
    interviews = Interviews(Store())
    if bug is not None:
        return interviews, interviews.start(kind, bug, variant, seed)
    if not hasattr(interviews, "start_with"):
        pytest.skip("server.interviews.Interviews cannot start an interview with no bug yet (no start_with)")
    return interviews, interviews.start_with(kind, [], seed)


async def play(kind, bug=None, variant=None):
    """(the agent's final text, the diagnosis events the grader recorded, tool calls made)."""
    interviews, interview = start(kind, bug, variant)
    calls = []
    async with Client(build_server("candidate", interview_id=interview.id)) as client:
        async def call(tool, arguments):
            calls.append(tool)
            result = await client.call_tool(tool, arguments)
            if result.is_error:
                raise ToolFailed(result.content[0].text)
            return read_result(tool, result.content[0].text)  # the text, as a model (and Inspect) reads it

        text = await run_reference_agent(call, kind)
    events = interviews.summary(interviews.get(interview.id))["events"]
    return text, [e["payload"] for e in events if e["kind"] == "diagnosis"], calls


def found(diagnoses, bug):
    bug_id = get_bug(bug).id
    return any(d["bug_id"] == bug_id and d["location_right"] and d["cause_right"] for d in diagnoses)


# Production debugging of a bug the agent must find from its symptoms. The same agent plays more
# in tests/test_eval.py's episodes, where it must find zero_grad misplaced (bug 1: not learning)
# and claim nothing on a control: those two are not played again here (each cost a minute or two
# of CI). The causal mask's diagonal (validation below the entropy floor) is played there too,
# scored, not required to be found.
@pytest.mark.parametrize("bug, variant", [
    ("attn-mask-broadcast", 2),   # NaN: the padding mask broadcast over queries instead of keys
])
async def test_production_debugging_finds_the_bug_from_its_symptoms(state, bug, variant):
    text, diagnoses, calls = await play("production_debugging", bug, variant)
    assert calls[0] == "run_training" and calls.count("run_training") == 1, calls
    assert len(calls) <= MAX_CALLS and 1 <= len(diagnoses) <= MAX_DIAGNOSES, (calls, diagnoses)
    assert found(diagnoses, bug), (text, diagnoses)


@pytest.mark.parametrize("bug, variant", [
    ("attention-unscaled", 1),
    ("grad-norm-summed", 1),
    ("linear-bias", 1),
    ("targets-unshifted", 1),
])
async def test_code_review_names_the_bad_line_of_the_snippet(state, bug, variant):
    text, diagnoses, calls = await play("code_review", bug, variant)
    assert calls[0] == "get_snippet" and "run_training" not in calls, calls
    assert 1 <= len(diagnoses) <= MAX_DIAGNOSES, (text, diagnoses)
    assert found(diagnoses, bug), (text, diagnoses)


async def test_code_review_control_claims_nothing(state):
    text, diagnoses, _ = await play("code_review")
    assert diagnoses == [], (text, diagnoses)


def test_the_agent_cannot_reach_the_answer():
    """It imports neither the catalogue nor the server nor the sandbox: only the rule book."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, evals.reference_agent; "
                               "print(sorted({m.split('.')[0] for m in sys.modules} & "
                               "{'bug_catalog', 'sandbox', 'server', 'picochat'}))"],
        capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
