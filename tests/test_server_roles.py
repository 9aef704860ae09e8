"""The candidate role, as an agent under evaluation gets it: no reveal, no resources, no interviewer
fields; a server bound to one interview serves only that one; and no result of any candidate tool
gives the bug away (its id, slug, title, un-asked hints, explanation, or the answer key's path)."""

import json
import re

import pytest
from mcp import Client

from bug_catalog.catalog import load_catalog
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.state import answer_key_path
from sandbox.workspace import load_answer_key, read_codebase
from server import locate
from server.app import build_server

pytestmark = pytest.mark.anyio

INTERVIEWER_FIELDS = ("bug_id", "explanation", "matched_bug_id", "matched_bug_title", "slug", "events", "bugs", "checks")


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


async def call(client, tool, **arguments):
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content[0].text}"
    return result


def keys_of(value):
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def giveaways(bug_id, asked_hints):
    """What would single out the bug, leaving out anything the public codebase itself contains."""
    record = load_catalog()[bug_id]
    codebase = "\n".join(read_codebase(PICOCHAT_DIR).values()).lower()
    texts = [record.slug, record.title, record.explanation.strip()[:60], *record.hints[asked_hints:], "keys/"]
    plain = [t for t in texts if t.lower() not in codebase]
    patterns = [rf"\bbug\s*#?\s*{bug_id}\b", rf"#\s*{bug_id}\b", rf"\bid\W+{bug_id}\b"]
    patterns = [p for p in patterns if not re.search(p, codebase)]
    return plain, patterns


def assert_silent(result, bug_id, asked_hints, where):
    content = "\n".join(c.text for c in result.content if c.type == "text")
    structured = json.dumps(result.structured_content)
    plain, patterns = giveaways(bug_id, asked_hints)
    for said in (content, structured):
        for text in plain:
            assert text.lower() not in said.lower(), f"{where} gives away {text!r}"
        for pattern in patterns:
            assert not re.search(pattern, said, re.IGNORECASE), f"{where} matches {pattern!r}"
    assert not keys_of(result.structured_content) & set(INTERVIEWER_FIELDS), f"{where} has interviewer fields"


async def test_the_candidate_has_no_reveal_no_resources_and_no_interviewer_fields(state):
    async with Client(build_server("candidate")) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "reveal" not in tools
        assert not (await client.list_resources()).resources
        assert not (await client.list_resource_templates()).resource_templates
        assert [p.name for p in (await client.list_prompts()).prompts] == ["self_practice"]
        for tool in tools.values():
            schema = json.dumps(tool.output_schema)
            for field in ("explanation", "matched_bug_id", "matched_bug_title", '"checks"', '"events"', '"slug"',
                          '"file"', '"function"'):
                assert field not in schema, f"{tool.name} declares {field}"
        listed = (await call(client, "list_bugs")).structured_content["bugs"]
        assert set(listed[0]) == {"id", "title", "category", "priority", "difficulty"}

    async with Client(build_server("interviewer")) as client:
        assert "reveal" in {t.name for t in (await client.list_tools()).tools}
        catalogue = json.loads((await client.read_resource("bugdrill://catalog")).contents[0].text)
        assert len(catalogue) == len(load_catalog())
        record = json.loads((await client.read_resource("bugdrill://bugs/zero-grad")).contents[0].text)
        assert record["id"] == 1 and record["explanation"]


async def test_a_bound_candidate_serves_only_its_interview(state):
    async with Client(build_server("interviewer")) as interviewer:
        mine = (await call(interviewer, "start_interview", kind="code_review", bug=5, seed=1)).structured_content
        other = (await call(interviewer, "start_interview", kind="code_review", bug=6, seed=1)).structured_content
    async with Client(build_server("candidate", interview_id=mine["interview_id"])) as client:
        assert "start_interview" not in {t.name for t in (await client.list_tools()).tools}
        assert (await call(client, "get_snippet")).structured_content["interview_id"] == mine["interview_id"]
        refused = await client.call_tool("read_file", {"interview_id": other["interview_id"], "path": "README.md"})
        assert refused.is_error and "serves interview" in refused.content[0].text
        statuses = (await call(client, "interview_status")).structured_content["interviews"]
        assert [s["interview_id"] for s in statuses] == [mine["interview_id"]]
        progress = (await call(client, "get_progress")).structured_content
        assert [i["interview_id"] for i in progress["interviews"]] == [mine["interview_id"]]


@pytest.mark.parametrize("bug_id,kind,verify", [(4, "code_review", True), (13, "code_review", False),
                                                 (48, "production_debugging", False), (21, "practice", False),
                                                 (12, "code_review", False)])
async def test_no_candidate_result_gives_the_bug_away(state, bug_id, kind, verify):
    async with Client(build_server("interviewer")) as interviewer:
        started = (await call(interviewer, "start_interview", kind=kind, bug=bug_id, seed=3)).structured_content
    interview = started["interview_id"]
    key = load_answer_key(started["workspace"])
    bug = key["bugs"][0]
    line = locate.anchors(bug["diff"])[0]
    record = load_catalog()[bug_id]
    right = f"{' '.join(g[0] for g in record.cause_terms)}"
    asked = 0

    async with Client(build_server("candidate", interview_id=interview)) as client:
        steps = [("interview_status", {}), ("list_files", {}), ("read_file", {"path": bug["file"]}),
                 ("read_file", {"path": bug["file"], "start_line": max(1, line - 5), "end_line": line + 5}),
                 ("search_code", {"pattern": "def ", "max_results": 500}),
                 ("search_code", {"pattern": r"loss|grad", "regex": True}),
                 ("get_hint", {}),
                 ("submit_diagnosis", {"file": "README.md", "line": 1, "what_is_wrong": "nothing is wrong"}),
                 ("submit_diagnosis", {"file": bug["file"], "line": line, "what_is_wrong": right}),
                 ("edit_file", {"path": "NOTES.md", "content": "my notes\n"}),
                 ("record_note", {"symptoms": "loss looked odd", "key_learning": "read the loop"}),
                 ("get_progress", {})]
        if kind == "code_review":
            steps.insert(1, ("get_snippet", {}))
        if verify:
            steps.append(("verify_fix", {}))
        steps.append(("end_interview", {}))
        steps.append(("interview_status", {}))
        for tool, arguments in steps:
            result = await call(client, tool, **arguments)
            asked += tool == "get_hint"
            assert_silent(result, bug_id, asked, f"{tool}({arguments})")
        graded = [e for e in json.loads(json.dumps(result.structured_content))["interviews"]]
        assert graded[0]["diagnoses"] == 2

    assert str(answer_key_path(started["workspace"])) not in json.dumps(started)


async def test_an_unbound_candidate_starts_blind(state):
    async with Client(build_server("candidate")) as client:
        result = await call(client, "start_interview", kind="practice", seed=11)
        key = load_answer_key(result.structured_content["workspace"])
        assert_silent(result, key["bugs"][0]["id"], 0, "start_interview")
        refused = await client.call_tool("get_snippet", {"interview_id": result.structured_content["interview_id"]})
        assert refused.is_error and "no code-review snippet" in refused.content[0].text
        # a variant's range would tell which bug a random draw picked
        refused = await client.call_tool("start_interview", {"kind": "practice", "seed": 11, "variant": 3})
        assert refused.is_error and "specific bug" in refused.content[0].text
        assert not re.search(r"\bbug \d", refused.content[0].text)


async def test_an_unknown_bug_resource_is_not_found(state):
    from mcp.shared.exceptions import MCPError

    async with Client(build_server("interviewer")) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["bugdrill://bugs/{id}"]
        with pytest.raises(MCPError, match="unknown bug"):
            await client.read_resource("bugdrill://bugs/999")
        assert (await call(client, "list_bugs")).structured_content["count"] > 0


@pytest.mark.parametrize("bug_id,variant,steps", [(48, 1, 10), (20, 1, 3), (42, 1, 3)])
async def test_no_training_result_gives_the_bug_away(state, bug_id, variant, steps):
    async with Client(build_server("interviewer")) as interviewer:
        started = (await call(interviewer, "start_interview", kind="production_debugging", bug=bug_id,
                              variant=variant, seed=3)).structured_content
    async with Client(build_server("candidate", interview_id=started["interview_id"])) as client:
        run = await call(client, "run_training", steps=steps)
        assert_silent(run, bug_id, 0, "run_training")
        run_id = run.structured_content["run_id"]
        assert_silent(await call(client, "list_runs"), bug_id, 0, "list_runs")
        for view in run.structured_content["views"]:
            assert_silent(await call(client, "get_view", run_id=run_id, view=view), bug_id, 0, f"get_view {view}")
        # a per-layer view: the aggregate ones draw a band of pristine runs with other seeds (two more
        # runs of the request each, which tests/test_server_training.py pays for once)
        plot = await client.call_tool("get_plot", {"run_id": run_id, "view": "activations"})
        assert not plot.is_error and plot.content[0].type == "image"
