"""What a model reads of a tool's result: text written for reading beside the structured content,
never the JSON of it; and evals/tool_text.py, the reference agent's eyes, reads that text back
into the same fields the structured content holds."""

import json
import re

import pytest
from mcp import Client

from evals.tool_text import read_result
from server import results
from server.app import build_server
from server.text import render
from server.tools.training import RunList, RunReport, ViewText
from mcp_calls import call

pytestmark = pytest.mark.anyio

SLOW = {"run_training", "get_view", "get_plot", "verify_fix"}  # runs or checks: their text is tested on models
CLOCK = results.Clock(elapsed_s=65, limit_s=1200, remaining_s=1135, over_time=False, note="1:05 of 20:00 used",
                      started=True, starts="now")


def text_of(result):
    (content,) = result.content
    assert content.type == "text"
    return content.text


def is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


async def test_every_tool_answers_text_for_reading_beside_its_structured_content(server_state):
    async with Client(build_server("interviewer")) as client:
        everything = {t.name: t for t in (await client.list_tools()).tools}
        started = await call(client, "start_interview", kind="code_review", bug=1, variant=1, seed=5)
        interview = started["interview_id"]
        calls = [
            ("get_snippet", {}), ("list_files", {"path": "picochat"}),
            ("read_file", {"path": "picochat/gpt.py", "start_line": 20, "end_line": 30}),
            ("search_code", {"pattern": "zero_grad"}),
            ("edit_file", {"path": "picochat/gpt.py", "old_text": "n_layer: int = 4", "new_text": "n_layer: int = 4 "}),
            ("submit_diagnosis", {"file": "picochat/gpt.py", "line": 25, "what_is_wrong": "the model has 4 layers"}),
            ("get_hint", {}), ("interview_status", {}), ("get_progress", {}), ("list_runs", {}),
            ("record_note", {"symptoms": "nothing yet"}), ("list_bugs", {"priority": 1}), ("reveal", {}),
            ("end_interview", {}),
        ]
        shown = {"start_interview": (started, None)}
        for tool, arguments in calls:
            arguments = {**arguments, "interview_id": interview} if tool not in ("list_bugs", "get_progress") \
                else arguments
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, f"{tool}: {text_of(result)}"
            shown[tool] = result.structured_content, text_of(result)

    assert set(shown) | SLOW == set(everything), set(everything) - set(shown) - SLOW
    for tool, (structured, text) in shown.items():
        if text is None:
            continue
        assert isinstance(structured, dict) and structured, tool  # the structured content is still there
        assert not is_json(text) and "\\n" not in text and '{"' not in text, f"{tool} reads as JSON: {text[:300]}"

    snippet_structured, snippet_text = shown["get_snippet"]
    (window,) = snippet_structured["snippets"]
    assert f"{window['path']}, lines {window['first_line']}-{window['last_line']}:\n```python\n" in snippet_text
    assert window["code"] in snippet_text  # numbered lines, as they are, in the fenced block

    excerpt, excerpt_text = shown["read_file"]
    assert excerpt_text.startswith(f"picochat/gpt.py: lines 20-30 of {excerpt['total_lines']}.\n```python\n20 | ")

    _, bugs_text = shown["list_bugs"]
    assert_aligned(bugs_text, "slug")
    _, revealed = shown["reveal"]
    assert "```diff\n--- a/" in revealed  # the diff as a diff, not an escaped string


def assert_aligned(text, column):
    """Every row of the table whose header has `column` starts that column at the header's offset."""
    lines = text.split("\n")
    header = next(i for i, line in enumerate(lines) if re.search(rf"\b{column}\b", line) and line.startswith("  id"))
    offset = lines[header].index(column)
    rows = [line for line in lines[header + 1:] if line.startswith("  ") and line.strip()]
    assert rows and all(row[offset - 2:offset] == "  " and row[offset] != " " for row in rows), lines[header:]


# --- the reference agent's eyes: what it reads back equals what the structured content holds ---

FENCED = "```python\nx = 1\n```"  # content that holds a fence of its own


def read_back(tool, model):
    return read_result(tool, render(model))


def test_a_file_read_reads_back_whole_with_its_range():
    code = "1 | " + FENCED.replace("\n", "\n2 | ", 1)
    excerpt = results.FileExcerpt(path="notes/a.md", first_line=1, last_line=3, total_lines=900, truncated=True,
                                  code=code)
    assert read_back("read_file", excerpt) == {k: v for k, v in excerpt.model_dump().items()}
    empty = results.FileExcerpt(path="empty.py", first_line=1, last_line=0, total_lines=0, truncated=False, code="")
    assert read_back("read_file", empty) == empty.model_dump()


def test_a_snippet_of_two_windows_reads_back_window_by_window():
    windows = [results.CodeWindow(path="picochat/gpt.py", first_line=10, last_line=11, code="10 | a\n11 | b"),
               results.CodeWindow(path="scripts/x.py", first_line=3, last_line=3, code="3 | x, lines 1-2:")]
    shown = results.Snippet(interview_id="abc", snippets=windows, clock=CLOCK)
    assert read_back("get_snippet", shown) == {"snippets": [w.model_dump() for w in windows]}


def test_a_run_report_and_a_view_read_back_as_the_agent_uses_them():
    report = RunReport(run_id="t1", state="failed", message="exited with status 1", commands=["python -m x"],
                       wall_s=3.25, symptoms=["crashed", "loss_spike"], views=["log", "stderr"],
                       summary="The run crashed.\n\nIt said: Symptom classes are not a line here.")
    back = read_back("run_training", report)
    assert back == {"run_id": "t1", "state": "failed", "summary": report.summary, "symptoms": report.symptoms}
    assert read_back("run_training", report.model_copy(update={"symptoms": []}))["symptoms"] == []
    view = ViewText(run_id="t1", view="stdout", text="step 1\n" + FENCED + "\n````\nlast")
    assert read_back("get_view", view) == {"text": view.text}


def test_verdicts_read_back_right_and_wrong():
    for fixed in (True, False):
        message = "Fixed: the checks pass." if fixed else "Not fixed: the checks still fail."
        verdict = results.Verification(interview_id="a", fixed=fixed, verifies_used=1, verifies_left=None,
                                       message=message, clock=CLOCK)
        assert read_back("verify_fix", verdict)["fixed"] is fixed
    for location, cause in ((True, False), (False, True), (True, True)):
        grade = results.DiagnosisResult(interview_id="a", location_right=location, cause_right=cause,
                                        found=location and cause, score=(location + cause) / 2, message="graded",
                                        diagnoses_submitted=1, diagnoses_left=2, clock=CLOCK)
        back = read_back("submit_diagnosis", grade)
        assert (back["location_right"], back["cause_right"], back["found"]) == (location, cause, location and cause)


def test_searches_and_listings_read_back_their_rows():
    found = results.SearchResult(pattern="x", count=2, truncated=True, files_searched=3, matches=[
        results.SearchMatch(path="a.py", line=4, text="    x = 1  # a: 2: b"),
        results.SearchMatch(path="dir/b.py", line=10, text="x")])
    rows = [m.model_dump() for m in found.matches]
    assert read_back("search_code", found) == {"matches": rows, "truncated": True}
    listed = results.FileList(path=".", files=["a.py", "dir/b.py"], truncated=False)
    assert read_back("list_files", listed) == {"files": ["a.py", "dir/b.py"]}
    assert read_back("list_files", listed.model_copy(update={"files": []})) == {"files": []}


def test_a_roles_extra_fields_are_shown_without_a_renderer_of_their_own():
    """The interviewer's verification adds its checks: the generic renderer lays them out as a table."""
    full = results.VerificationFull(interview_id="a", fixed=False, verifies_used=2, verifies_left=1,
                                    message="Not fixed: the checks still fail.", clock=CLOCK, checks=[
                                        results.CheckOutcome(name="zero-grad", bug_id=1, passed=False, detail="no"),
                                        results.CheckOutcome(name="others", bug_id=None, passed=True, detail="")])
    text = render(full)
    assert text.startswith("Not fixed: the checks still fail.\nverify_fix calls: 2 used, 1 left.")
    assert "checks (2):\n  name       bug id  passed  detail\n  zero-grad       1  no      no\n  others       none  yes" \
        in text
    assert "clock: 1:05 of 20:00 used" in text and "interview id: a" in text


def test_nothing_is_said_as_a_python_or_json_value():
    assert render(RunList(runs=[])) == "No runs yet: run_training makes one."
    ended = results.InterviewEnded(interview_id="a", verdict="solved", found=True, fixed=True, revealed=False,
                                   time_to_find_s=None, hints_used=0, diagnoses=1, verifies=1, clock=CLOCK,
                                   message="Interview ended: solved.")
    assert "found: yes\nfixed: yes\nrevealed: no\ntime to find (s): none" in render(ended)
