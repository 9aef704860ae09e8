"""Episode integrity on the server's candidate surface (issue 15, points 6, 8 and 9), each hole
tried as an attacker would with candidate tools only: a catastrophic regex that would stall every
call, a bound candidate's catalogue and progress, an unbound candidate reaching other interviews,
an interviewer prompt asked of a candidate server, unknown arguments, and codebases that are not
a recognised checkout or that overlap the state directory."""

import json
import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from sandbox.codebases.picochat import PICOCHAT_DIR
from server import files
from server.app import build_server
from mcp_calls import call, error

pytestmark = pytest.mark.anyio

# generous: the old backtracking search needed about 14 s for 26 'a's on this machine and doubles
# per character, so with HOSTILE_RUN it would take days; a linear engine needs milliseconds
HANG_S = 20
HOSTILE_RUN = 40


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


async def start(kind="practice", bug=4, seed=1, **arguments):
    async with Client(build_server("interviewer")) as interviewer:
        return await call(interviewer, "start_interview", kind=kind, bug=bug, seed=seed, **arguments)


def stdio_server(state, *args):
    """`bugdrill serve` in a subprocess: a search that holds the GIL (Python's `re` does) freezes
    the whole process it runs in, so the test must not share one with the server."""
    return StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve", *args],
                                 env={**os.environ, "BUGDRILL_STATE_DIR": str(state), "OMP_NUM_THREADS": "1"},
                                 cwd=str(Path(__file__).resolve().parents[1]))


# point 6: one call stalls everyone


async def test_a_catastrophic_regex_neither_hangs_nor_stalls_other_calls(state):
    started = await start()
    hostile = "a" * HOSTILE_RUN
    answers = {}
    async with Client(stdio_server(state, "--role", "candidate", "--interview", started["interview_id"])) as client:
        # the first line makes a backtracking engine try every split of the run; the second matches
        await call(client, "edit_file", path="hostile.txt", content=f"{hostile}!\n{hostile}\n")

        async def ask(tool, **arguments):
            answers[tool] = await client.call_tool(tool, arguments)

        with anyio.move_on_after(HANG_S):
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: ask("search_code", pattern="(a+)+$", regex=True, path="hostile.txt"))
                group.start_soon(lambda: ask("list_files"))
    assert set(answers) == {"search_code", "list_files"}, (
        f"search_code('(a+)+$') over {HOSTILE_RUN} 'a's: still waiting after {HANG_S} s for "
        f"{sorted({'search_code', 'list_files'} - set(answers))}")
    listed = answers["list_files"]
    assert not listed.is_error and "hostile.txt" in listed.structured_content["files"]
    searched = answers["search_code"]
    assert not searched.is_error, searched.content[0].text
    assert [m["line"] for m in searched.structured_content["matches"]] == [2]


@pytest.mark.parametrize("pattern,named", [(r"(def)\s+\1", "backreference"), (r"(?P<x>def) (?P=x)", "backreference"),
                                           (r"def(?= )", "lookaround"), (r"(?<!_)loss", "lookaround")])
async def test_a_regex_the_linear_engine_cannot_run_is_refused_with_the_reason(state, pattern, named):
    started = await start()
    async with Client(build_server("candidate", interview_id=started["interview_id"])) as client:
        message = await error(client, "search_code", pattern=pattern, regex=True)
        assert named in message and "regex=false" in message, message
        assert (await call(client, "search_code", pattern=pattern))["count"] == 0  # literally, it is just text


async def test_an_invalid_regex_is_a_clear_error(state):
    started = await start()
    async with Client(build_server("candidate", interview_id=started["interview_id"])) as client:
        message = await error(client, "search_code", pattern="[a-", regex=True)
        assert "invalid regular expression" in message and "regex=false" in message, message


async def test_a_search_over_its_time_budget_gives_up_with_a_clear_error(state, monkeypatch):
    started = await start()
    monkeypatch.setattr(files, "SEARCH_BUDGET_S", 0.0)
    async with Client(build_server("candidate", interview_id=started["interview_id"])) as client:
        message = await error(client, "search_code", pattern=r"\w+", regex=True)
        assert "gave up" in message and "path" in message, message


async def test_case_insensitive_and_literal_searches_still_find_what_they_should(state):
    started = await start()
    async with Client(build_server("candidate", interview_id=started["interview_id"])) as client:
        await call(client, "edit_file", path="notes/probe.txt", content="Loss went NaN\nloss (a+)+$ here\n")
        found = await call(client, "search_code", pattern="LOSS", path="notes", case_sensitive=False)
        assert [m["line"] for m in found["matches"]] == [1, 2]
        found = await call(client, "search_code", pattern="(a+)+$", path="notes")
        assert [m["line"] for m in found["matches"]] == [2]
        found = await call(client, "search_code", pattern=r"^loss\b", regex=True, path="notes", case_sensitive=False)
        assert [m["line"] for m in found["matches"]] == [1, 2]


# point 8: what narrows the answer without debugging


async def test_a_bound_candidate_has_no_catalogue(state):
    started = await start(kind="production_debugging", bug=48)
    async with Client(build_server("candidate", interview_id=started["interview_id"])) as client:
        assert "list_bugs" not in {t.name for t in (await client.list_tools()).tools}
        assert (await client.call_tool("list_bugs", {})).is_error
        assert (await client.call_tool("list_bugs", {"interview_type": "production_debugging"})).is_error
        assert not (await client.list_resources()).resources
        assert not (await client.list_resource_templates()).resource_templates
        for uri in ("bugdrill://catalog", "bugdrill://bugs/48", "bugdrill://bugs/zero-grad"):
            with pytest.raises(MCPError):
                await client.read_resource(uri)


async def test_a_bound_candidates_progress_shows_nothing_of_other_interviews(state):
    mine, other = await start(bug=4), await start(bug=13)
    async with Client(build_server("interviewer")) as interviewer:
        await call(interviewer, "record_note", interview_id=other["interview_id"], symptoms="their symptom")
        await call(interviewer, "record_note", bug=13, key_learning="a lesson about bug thirteen")
    async with Client(build_server("candidate", interview_id=mine["interview_id"])) as client:
        await call(client, "record_note", symptoms="my symptom")
        progress = await call(client, "get_progress")
        assert [i["interview_id"] for i in progress["interviews"]] == [mine["interview_id"]]
        assert [n["symptoms"] for n in progress["notes"]] == ["my symptom"]
        shown = json.dumps(progress)
        for foreign in (other["interview_id"], other["workspace"], "their symptom", "bug thirteen"):
            assert foreign not in shown


# point 9: small holes


async def test_an_unbound_candidate_acts_only_on_interviews_it_started(state):
    theirs = await start(bug=4)
    async with Client(build_server("candidate")) as client:
        assert (await call(client, "interview_status"))["interviews"] == []
        assert (await call(client, "get_progress"))["interviews"] == []
        for tool, arguments in (("interview_status", {}), ("read_file", {"path": "README.md"}),
                                ("list_files", {}), ("get_hint", {}), ("end_interview", {}),
                                ("submit_diagnosis", {"file": "README.md", "line": 1, "what_is_wrong": "guess"}),
                                ("record_note", {"symptoms": "mine now"})):
            message = await error(client, tool, interview_id=theirs["interview_id"], **arguments)
            assert "not started by this server" in message, f"{tool}: {message}"
        mine = await call(client, "start_interview", kind="practice", seed=2)
        listed = (await call(client, "interview_status"))["interviews"]
        assert [i["interview_id"] for i in listed] == [mine["interview_id"]]
        assert (await call(client, "list_files", interview_id=mine["interview_id"]))["files"]
        assert [i["interview_id"] for i in (await call(client, "get_progress"))["interviews"]] == [mine["interview_id"]]
    async with Client(build_server("interviewer")) as interviewer:
        (status,) = (await call(interviewer, "interview_status", interview_id=theirs["interview_id"]))["interviews"]
        assert status["state"] == "open" and status["hints_used"] == 0 and status["diagnoses"] == 0


@pytest.mark.parametrize("name", ["code_review_interview", "production_debugging_interview", "no_such_prompt"])
async def test_a_prompt_a_candidate_server_does_not_have_is_a_clean_protocol_error(state, name):
    async with Client(build_server("candidate")) as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt(name, {})
        assert refused.value.code == INVALID_PARAMS and name in refused.value.error.message
        assert "self_practice" in refused.value.error.message  # what it does have
        assert "start_interview(" in (await client.get_prompt("self_practice", {})).messages[0].content.text


async def test_an_undeclared_prompt_argument_is_a_clean_protocol_error(state):
    async with Client(build_server("candidate")) as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("self_practice", {"colour": "blue"})
        assert refused.value.code == INVALID_PARAMS and "colour" in refused.value.error.message


@pytest.mark.parametrize("role", ["candidate", "interviewer"])
async def test_start_interview_refuses_unknown_arguments(state, role):
    async with Client(build_server(role)) as client:
        message = await error(client, "start_interview", kind="practice", bugs=4, seed=1)  # `bug` misspelt
        assert "unknown argument" in message and "bugs" in message and "bug," in message, message
        assert (await call(client, "interview_status"))["interviews"] == []
        await call(client, "start_interview", kind="practice", bug=4, seed=1)


async def test_any_tool_refuses_unknown_arguments(state):
    started = await start()
    async with Client(build_server("candidate", interview_id=started["interview_id"])) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert all(t.input_schema.get("additionalProperties") is False for t in tools.values())
        message = await error(client, "get_progress", interview="x")
        assert "unknown argument" in message and "interview" in message, message
        message = await error(client, "search_code", pattern="loss", regexp=True)
        assert "unknown argument" in message and "regexp" in message, message


def spy_on_listing(monkeypatch, under):
    """Every directory listed under `under` while the spy is on (os.scandir is what rglob, walk and
    copytree list with)."""
    listed = []
    real_scandir = os.scandir

    def scandir(path="."):
        if str(os.fspath(path)).startswith(str(under)):
            listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return listed


async def test_a_codebase_that_is_not_a_recognised_checkout_is_refused_before_it_is_read(state, tmp_path,
                                                                                        monkeypatch):
    stranger = tmp_path / "not-a-checkout"
    (stranger / "deep" / "deeper").mkdir(parents=True)
    (stranger / "deep" / "deeper" / "train.py").write_text("print('hello')\n")
    listed = spy_on_listing(monkeypatch, stranger)
    async with Client(build_server("interviewer")) as client:
        message = await error(client, "start_interview", kind="practice", bug=4, codebase=str(stranger))
        assert "not a recognised checkout" in message and "bugdrill doctor" in message, message
        assert listed == []
        message = await error(client, "start_interview", kind="practice", bug=4, codebase="/")
        assert "not a recognised checkout" in message, message
        assert (await call(client, "interview_status"))["interviews"] == []


@pytest.mark.parametrize("where", ["inside", "around"])
async def test_a_codebase_overlapping_the_state_directory_is_refused(state, tmp_path, monkeypatch, where):
    if where == "inside":  # a checkout in the state directory: a workspace copied from answer keys' home
        checkout = state / "picochat-copy"
    else:  # a checkout that holds the state directory: its copy would carry every answer key
        checkout = tmp_path / "checkout"
        monkeypatch.setenv("BUGDRILL_STATE_DIR", str(checkout / "state"))
    state_now = checkout / "state" if where == "around" else state
    state_now.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PICOCHAT_DIR, checkout, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    async with Client(build_server("interviewer")) as client:
        message = await error(client, "start_interview", kind="practice", bug=4, codebase=str(checkout))
        assert "state directory" in message, message
        assert (await call(client, "interview_status"))["interviews"] == []


async def test_a_copy_of_picochat_elsewhere_is_still_a_codebase(state, tmp_path):
    checkout = shutil.copytree(PICOCHAT_DIR, tmp_path / "my-picochat", ignore=shutil.ignore_patterns("__pycache__"))
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="practice", bug=4, seed=1, codebase=str(checkout))
        assert (await call(client, "list_files", interview_id=started["interview_id"]))["files"]
