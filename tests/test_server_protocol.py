"""The MCP server driven through a real client session (in process): a whole code-review interview,
the snippet's stability, bad input over the protocol, and a restart that loses nothing."""

import os
import random

import pytest
from mcp import Client

from bug_catalog.catalog import load_catalog
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.workspace import apply_variants, load_answer_key, read_codebase
from server import locate, snippet
from server.app import build_server
from mcp_calls import call, error

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


def shown_lines(window):
    """{line number: code} of a numbered code block."""
    lines = {}
    for row in window["code"].splitlines():
        number, _, code = row.partition(" | ")
        lines[int(number)] = code
    return lines


async def test_a_whole_code_review_interview(state):
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="code_review", bug=1, variant=1, seed=5)
        interview = started["interview_id"]
        assert started["clock"]["limit_s"] == 20 * 60 and not started["clock"]["over_time"]
        key = load_answer_key(started["workspace"])
        bug = key["bugs"][0]
        marks = locate.anchors(bug["diff"])
        bugged = locate.bugged_text(bug).splitlines()

        # the snippet: 20-30 numbered lines of the bugged file around every changed line
        shown = await call(client, "get_snippet", interview_id=interview)
        (window,) = shown["snippets"]
        assert window["path"] == bug["file"]
        assert 20 <= window["last_line"] - window["first_line"] + 1 <= 30
        lines = shown_lines(window)
        assert all(mark in lines for mark in marks)
        assert all(lines[n] == bugged[n - 1] for n in lines)

        # reading and searching the workspace
        excerpt = await call(client, "read_file", interview_id=interview, path=bug["file"],
                             start_line=marks[0] - 2, end_line=marks[0] + 2)
        assert excerpt["first_line"] == marks[0] - 2 and len(excerpt["code"].splitlines()) == 5
        found = await call(client, "search_code", interview_id=interview, pattern="scaler.step(optimizer)")
        assert any(m["path"] == bug["file"] for m in found["matches"])

        # a wrong diagnosis, then the right one
        wrong = await call(client, "submit_diagnosis", interview_id=interview, file="picochat/gpt.py", line=40,
                           what_is_wrong="the attention scores are not scaled")
        assert (wrong["location_right"], wrong["cause_right"], wrong["score"]) == (False, False, 0)
        right = await call(client, "submit_diagnosis", interview_id=interview, file=bug["file"], line=marks[0],
                           what_is_wrong="optimizer.zero_grad() is gone, so gradients accumulate across steps")
        assert right["found"] and right["score"] == 1 and right["diagnoses_submitted"] == 2
        assert right["matched_bug_id"] == 1 and "accumulates" in right["explanation"]

        hint = await call(client, "get_hint", interview_id=interview)
        assert (hint["number"], hint["of"]) == (1, 3)
        assert hint["hints"] == [load_catalog()[1].hints[0]]

        # the fix, put back through edit_file, is verified by behaviour
        edited = await call(client, "edit_file", interview_id=interview, path=bug["file"], content=bug["pristine"])
        assert edited["diff"].startswith("--- a/") and not edited["created"]
        verified = await call(client, "verify_fix", interview_id=interview)
        assert verified["fixed"] and verified["verifies_used"] == 1 and verified["verifies_left"] is None

        revealed = await call(client, "reveal", interview_id=interview)
        assert revealed["bugs"][0]["id"] == 1 and revealed["bugs"][0]["diff"] == bug["diff"]
        assert revealed["bugs"][0]["symptom_on_this_codebase"] == ""  # picochat: the catalogue's symptom is its own

        ended = await call(client, "end_interview", interview_id=interview)
        assert ended["verdict"] == "solved" and ended["found"] and ended["fixed"]
        assert ended["time_to_find_s"] is not None and ended["hints_used"] == 1

        progress = await call(client, "get_progress")
        (zero_grad,) = [b for b in progress["bugs"] if b["id"] == 1]
        assert zero_grad["status"] == "fixed" and zero_grad["attempts"] == 1 and zero_grad["best_time_s"] is not None
        assert progress["next_bug"]["id"] != 1
        assert progress["interviews"][0]["verdict"] == "solved"


async def test_the_snippet_is_drawn_once_and_not_always_centred(state):
    async with Client(build_server("interviewer")) as client:
        firsts = set()
        for seed in range(6):
            started = await call(client, "start_interview", kind="code_review", bug=21, variant=1, seed=seed)
            once = await call(client, "get_snippet", interview_id=started["interview_id"])
            again = await call(client, "get_snippet", interview_id=started["interview_id"])
            assert once["snippets"] == again["snippets"]
            firsts.add(once["snippets"][0]["first_line"])
        assert len(firsts) >= 3


def test_snippet_windows_hold_every_changed_line_of_every_variant():
    files = read_codebase(PICOCHAT_DIR)
    rng = random.Random(0)
    for record in load_catalog().values():
        for variant in record.variants:
            (bug,) = apply_variants(dict(files), [(record, variant)])
            entry = {"file": bug.file, "diff": bug.diff, "pristine": bug.pristine, "edit": bug.edit}
            windows = snippet.plan([entry], rng.randrange(1000), {})
            for mark in locate.anchors(bug.diff):
                assert any(w["first"] <= mark <= w["last"] for w in windows), (record.id, variant.name, mark)
            for window in windows:
                assert 20 <= window["last"] - window["first"] + 1 <= 30 or len(windows) > 1, (record.id, variant.name)


async def test_bad_input_is_a_clear_error_and_the_server_keeps_serving(state, tmp_path):
    server = build_server("interviewer")
    async with Client(server) as client:
        started = await call(client, "start_interview", kind="practice", bug=4, seed=1)
        interview, workspace = started["interview_id"], started["workspace"]
        os.symlink("/etc", os.path.join(workspace, "etc-link"))

        assert "unknown bug" in await error(client, "start_interview", kind="code_review", bug=999)
        assert "unknown bug" in await error(client, "start_interview", kind="code_review", bug="no-such-bug")
        assert "unknown interview" in await error(client, "get_hint", interview_id="0123456789ab")
        assert "not an interview id" in await error(client, "read_file", interview_id="../../etc", path="x")
        outside = {"../outside.txt": "'..'", "scripts/../../x": "'..'", "/etc/passwd": "absolute",
                   "etc-link/passwd": "outside the workspace", ".git/config": ".git",
                   "picochat/../.git/HEAD": "'..'", "no/such/file.py": "does not exist"}
        for path, said in outside.items():
            assert said in await error(client, "read_file", interview_id=interview, path=path), path
        assert "outside the workspace" in await error(client, "edit_file", interview_id=interview,
                                                      path="etc-link/hosts", content="x")
        assert "exactly once" in await error(client, "edit_file", interview_id=interview, path="picochat/gpt.py",
                                             old_text="self", new_text="this")
        assert "invalid regular expression" in await error(client, "search_code", interview_id=interview,
                                                           pattern="(", regex=True)
        # wrong types and ranges are refused by the schema, before any tool code runs
        assert "validation error" in await error(client, "read_file", interview_id=interview, path="x",
                                                 start_line="ten")
        assert "validation error" in await error(client, "read_file", interview_id=interview, path="x",
                                                 start_line=0)
        assert "validation error" in await error(client, "start_interview", kind="whiteboard")
        assert "validation error" in await error(client, "start_interview", kind="code_review", seed=-1)
        assert "validation error" in await error(client, "submit_diagnosis", interview_id=interview, file=3,
                                                 what_is_wrong=["no"])
        assert "Unknown tool" in await error(client, "no_such_tool")

        await call(client, "end_interview", interview_id=interview)
        for tool, arguments in (("read_file", {"path": "picochat/gpt.py"}), ("get_hint", {}),
                                ("submit_diagnosis", {"file": "a.py", "what_is_wrong": "something"}),
                                ("edit_file", {"path": "a.py", "content": "x"}), ("verify_fix", {}),
                                ("get_snippet", {}), ("end_interview", {})):
            assert "has ended" in await error(client, tool, interview_id=interview, **arguments), tool

        # still serving, nothing lost
        assert (await call(client, "list_bugs"))["count"] == len(load_catalog())
        (status,) = (await call(client, "interview_status", interview_id=interview))["interviews"]
        assert status["state"] == "ended" and status["bugs"] == [{"id": 4, "variant": status["bugs"][0]["variant"]}]
        assert (await call(client, "reveal", interview_id=interview))["bugs"][0]["id"] == 4


async def test_a_restarted_server_continues_the_interview(state):
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="code_review", bug=13, seed=2)
        interview = started["interview_id"]
        snippet_before = await call(client, "get_snippet", interview_id=interview)
        await call(client, "get_hint", interview_id=interview)
        await call(client, "submit_diagnosis", interview_id=interview, file="picochat/optim.py", line=1,
                   what_is_wrong="the learning rate is never decayed")

    async with Client(build_server("interviewer")) as client:  # a new server object on the same state
        (status,) = (await call(client, "interview_status", interview_id=interview))["interviews"]
        assert status["state"] == "open" and status["hints_used"] == 1 and status["diagnoses"] == 1
        assert [e["kind"] for e in status["events"]] == ["view", "hint", "diagnosis"]
        assert await call(client, "get_snippet", interview_id=interview) == snippet_before
        assert (await call(client, "get_hint", interview_id=interview))["number"] == 2


async def test_prompts_carry_the_interviewer_scripts(state):
    async with Client(build_server("interviewer")) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        assert names == {"code_review_interview", "production_debugging_interview", "self_practice"}
        async def text(name, arguments):
            return " ".join((await client.get_prompt(name, arguments)).messages[0].content.text.split())

        review = await text("code_review_interview", {"bug": "7"})
        assert 'bug="7"' in review and "get_snippet" in review and "no logs" in review.lower()
        incident = await text("production_debugging_interview", {})
        assert "exactly that view and nothing more" in incident and "20 minutes" in incident
        practice = await text("self_practice", {"time_limit": "30"})
        assert "don't tell me where" in practice and "30 minutes" in practice


async def test_concurrent_calls_on_one_interview_are_serialised(state):
    import anyio

    async with Client(build_server("interviewer")) as client:
        interview = (await call(client, "start_interview", kind="practice", bug=3, seed=1))["interview_id"]
        answers = []

        async def ask():
            answers.append(await client.call_tool("get_hint", {"interview_id": interview}))

        async with anyio.create_task_group() as group:
            for _ in range(7):
                group.start_soon(ask)
        numbers = sorted(a.structured_content["number"] for a in answers if not a.is_error)
        assert numbers == [1, 2, 3]
        assert all("all 3 hints" in a.content[0].text for a in answers if a.is_error)
        (status,) = (await call(client, "interview_status", interview_id=interview))["interviews"]
        assert status["hints_used"] == 3


async def test_past_the_time_limit_results_say_so_and_the_tools_keep_working(state):
    import sqlite3

    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="code_review", bug=2, seed=1, time_limit_minutes=1)
        interview = started["interview_id"]
        with sqlite3.connect(state / "bugdrill.sqlite3") as db:  # as if it had started 90 s ago
            db.execute("UPDATE interviews SET started = started - 90 WHERE id = ?", (interview,))
        hint = await call(client, "get_hint", interview_id=interview)
        assert hint["clock"]["over_time"] and hint["clock"]["remaining_s"] == 0
        assert "move on" in hint["clock"]["note"]
        ended = await call(client, "end_interview", interview_id=interview)
        assert ended["clock"]["over_time"] and "over time" in ended["message"]
