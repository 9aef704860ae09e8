"""The interview clock, through a real MCP client: it can wait for the candidate's first call (the
interviewer's choice, and the default of an interview a candidate server is bound to), its start is
stored so a restart keeps it, and time limits count from it. Time passes by moving the stored
moments back, as the time-limit test of test_server_protocol does: nothing sleeps."""

import sqlite3

import pytest
from mcp import Client

from sandbox.workspace import load_answer_key
from server import locate
from server.app import build_server
from mcp_calls import call

pytestmark = pytest.mark.anyio

WAITING = "not started: it starts at the candidate's first call"  # the clock's note until that call


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


def move_back(state, interview, column, seconds):
    """As if the stored moment (the interview's creation, or its clock's start) were `seconds` earlier."""
    with sqlite3.connect(state / "bugdrill.sqlite3") as db:
        db.execute(f"UPDATE interviews SET {column} = {column} - ? WHERE id = ?", (seconds, interview))


async def clock_of(client, interview):
    (status,) = (await call(client, "interview_status", interview_id=interview))["interviews"]
    return status["clock"]


async def test_a_first_call_clock_waits_for_the_candidate_and_counts_from_the_first_call(state):
    async with Client(build_server("interviewer")) as interviewer:
        started = await call(interviewer, "start_interview", kind="code_review", bug=1, variant=1, seed=5,
                             time_limit_minutes=1, clock_starts="first_call")
        interview = started["interview_id"]
        assert not started["clock"]["started"] and started["clock"]["starts"] == "first_call"
        assert WAITING in started["clock"]["note"]
        move_back(state, interview, "started", 600)  # made ten minutes ago; nobody came yet

        # the interviewer's own calls do not start it
        await call(interviewer, "get_snippet", interview_id=interview)
        waiting = await clock_of(interviewer, interview)
        assert not waiting["started"] and not waiting["over_time"] and waiting["elapsed_s"] == 0
        assert waiting["remaining_s"] == 60 and WAITING in waiting["note"]

        async with Client(build_server("candidate", interview_id=interview)) as candidate:
            first = await call(candidate, "get_snippet")
            assert first["clock"]["started"] and not first["clock"]["over_time"]
            assert first["clock"]["elapsed_s"] < 30 and "candidate's first call" in first["clock"]["note"]

            move_back(state, interview, "clock_started", 90)  # the candidate has worked for 90 s
            hint = await call(candidate, "get_hint")
            assert hint["clock"]["over_time"] and hint["clock"]["remaining_s"] == 0
            assert 90 <= hint["clock"]["elapsed_s"] < 120 and "move on" in hint["clock"]["note"]
            assert (await clock_of(interviewer, interview))["over_time"]

            # time to find counts from the first call too, not from the interview's making
            bug = load_answer_key(started["workspace"])["bugs"][0]
            found = await call(candidate, "submit_diagnosis", file=bug["file"], line=locate.anchors(bug["diff"])[0],
                               what_is_wrong="optimizer.zero_grad() is gone, so gradients accumulate across steps")
            assert found["found"]
            ended = await call(candidate, "end_interview")
            assert ended["clock"]["over_time"] and "over time" in ended["message"]
        (status,) = (await call(interviewer, "interview_status", interview_id=interview))["interviews"]
        assert 90 <= status["time_to_find_s"] < 120


async def test_a_candidate_server_bound_to_a_default_interview_makes_its_clock_wait(state):
    async with Client(build_server("interviewer")) as interviewer:
        default = (await call(interviewer, "start_interview", kind="code_review", bug=2, seed=1))["interview_id"]
        move_back(state, default, "started", 600)
        running = await clock_of(interviewer, default)  # no candidate server yet: from the making
        assert running["started"] and running["starts"] == "default" and running["elapsed_s"] >= 600

        explicit = (await call(interviewer, "start_interview", kind="code_review", bug=2, seed=2,
                               time_limit_minutes=1, clock_starts="now"))["interview_id"]
        move_back(state, explicit, "started", 90)

        bound = build_server("candidate", interview_id=default)  # bound: the default now waits
        waiting = await clock_of(interviewer, default)
        assert not waiting["started"] and waiting["starts"] == "first_call" and WAITING in waiting["note"]
        async with Client(bound) as candidate:
            first = await clock_of(candidate, default)  # any call on it is the first call, a status one too
            assert first["started"] and first["elapsed_s"] < 30 and not first["over_time"]

        # the interviewer's explicit "now" is kept: the candidate arrives over time
        async with Client(build_server("candidate", interview_id=explicit)) as candidate:
            late = await clock_of(candidate, explicit)
            assert late["starts"] == "now" and late["over_time"] and late["elapsed_s"] >= 90


async def test_the_first_call_is_stored_and_a_restart_keeps_it(state):
    async with Client(build_server("interviewer")) as interviewer:
        kept = (await call(interviewer, "start_interview", kind="practice", bug=3, seed=1,
                           clock_starts="first_call"))["interview_id"]
        never = (await call(interviewer, "start_interview", kind="practice", bug=3, seed=2,
                            clock_starts="first_call"))["interview_id"]
    async with Client(build_server("candidate", interview_id=kept)) as candidate:
        await call(candidate, "interview_status")
    move_back(state, kept, "clock_started", 300)

    # a new server on the same state: the first call is not made again by a later call
    async with Client(build_server("candidate", interview_id=kept)) as candidate:
        again = await clock_of(candidate, kept)
        assert again["started"] and again["elapsed_s"] >= 300
    async with Client(build_server("interviewer")) as interviewer:
        assert not (await clock_of(interviewer, never))["started"]
        ended = await call(interviewer, "end_interview", interview_id=never)
        assert not ended["clock"]["started"] and "never started" in ended["clock"]["note"]
        assert "before the candidate's first call" in ended["message"] and "over time" not in ended["message"]


async def test_an_interview_from_before_the_clock_choice_keeps_counting_from_its_making(state):
    async with Client(build_server("interviewer")) as interviewer:
        interview = (await call(interviewer, "start_interview", kind="code_review", bug=2, seed=1,
                                time_limit_minutes=1))["interview_id"]
    with sqlite3.connect(state / "bugdrill.sqlite3") as db:  # the state directory of an earlier bugdrill
        db.execute("ALTER TABLE interviews DROP COLUMN clock_starts")
        db.execute("ALTER TABLE interviews DROP COLUMN clock_started")
    move_back(state, interview, "started", 90)

    # the columns come back on start; a candidate server bound to it leaves its running clock alone
    async with Client(build_server("candidate", interview_id=interview)) as candidate:
        clock = await clock_of(candidate, interview)
        assert clock["starts"] == "now" and clock["started"] and clock["over_time"]
