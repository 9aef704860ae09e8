"""Progress as a client receives it: a notification only when something moved on, about two a
second at most, `progress` always growing with `total` beside it, and a message that names the
stage. Before, a run sent one per poll of the runner (four a second, most of them the same),
with no total before the first logged step and progress starting again at 0 with each stage."""

import time

import pytest
from mcp import Client

from server.app import build_server
from server.interviews import StageResult
from server.progress_notes import MIN_GAP_S, ProgressNotes, stage_units
from mcp_calls import call

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def polls(clock, notes, stage, steps, per_poll=3, poll_s=0.25):
    """What the runner's polls report for one stage: each poll sees the step a few steps on,
    and reports it (and the stage's start) whether or not it moved."""
    notes(0, steps, f"{stage}: starting, {steps} steps planned")
    for step in [0, 0, *range(per_poll, steps + 1, per_poll), steps, steps]:
        clock.now += poll_s
        notes(step, steps, f"{stage}: step {step} of {steps}" if step else f"{stage}: starting, {steps} steps planned")


def check_notifications(sent):
    """What every client may rely on: growing progress, a total at least as large, no repeats."""
    assert sent, "no notification at all"
    assert all(total is not None and progress <= total for progress, total, _ in sent), sent
    assert all(b[0] > a[0] for a, b in zip(sent, sent[1:])), f"progress must grow with each notification: {sent}"
    assert all(a != b for a, b in zip(sent, sent[1:])), sent


def test_a_stage_polled_four_times_a_second_sends_two_a_second_and_its_last_state():
    clock, sent = FakeClock(), []
    notes = ProgressNotes(lambda *note: sent.append((clock.now, *note)), clock=clock)
    polls(clock, notes, "baseline (pristine code)", steps=60)
    notes.flush()
    times, received = [t for t, *_ in sent], [tuple(note) for _, *note in sent]
    check_notifications(received)
    assert received[0] == (0, 60, "baseline (pristine code): starting, 60 steps planned")  # at once
    assert received[-1] == (60, 60, "baseline (pristine code): step 60 of 60")  # the last state, not lost
    assert all(b - a >= MIN_GAP_S for a, b in zip(times[:-1], times[1:-1])), times  # flush may come sooner
    assert len(sent) <= clock.now / MIN_GAP_S + 2


def test_stages_are_laid_end_to_end_and_each_message_names_its_stage():
    clock, sent = FakeClock(), []
    notes = ProgressNotes(lambda *note: sent.append(note), min_gap_s=0, clock=clock)
    polls(clock, notes, "baseline (pristine code), stage 1 of 2 (scripts/base_train.py)", steps=10)
    notes(0, None, "baseline (pristine code), stage 2 of 2 (scripts/base_eval.py): running")  # no step count
    polls(clock, notes, "baseline (pristine code), stage 2 of 2 (scripts/base_eval.py)", steps=4, per_poll=1)
    polls(clock, notes, "training", steps=10)
    notes.flush()
    check_notifications(sent)
    first_stage = [n for n in sent if "stage 1 of 2" in n[2]]
    second_stage = [n for n in sent if "stage 2 of 2" in n[2]]
    training = [n for n in sent if n[2].startswith("training: ")]
    assert len(first_stage) + len(second_stage) + len(training) == len(sent)
    assert first_stage[-1][:2] == (10, 10) and second_stage[0][:2] == (11, 12)  # one unit, until it says more
    assert second_stage[-1][:2] == (15, 15) and training[-1][:2] == (26, 26)


def test_a_plan_fixes_the_total_from_the_first_note_and_a_skipped_phase_is_jumped():
    """A run says its plan (baseline, then training, 10 steps each): the total is the same in every
    notification; with the baseline cached, progress jumps past it and still ends full."""
    for cached in (False, True):
        clock, sent = FakeClock(), []
        notes = ProgressNotes(lambda *note: sent.append(note), min_gap_s=0, clock=clock)
        notes.plan(2 * stage_units(10))
        if not cached:
            polls(clock, notes, "baseline (pristine code)", steps=10)
        notes.reach(stage_units(10), "baseline (pristine code): ready")
        polls(clock, notes, "training", steps=7)  # a run that crashed at step 7
        notes.finish("training: crashed")
        check_notifications(sent)
        assert {total for _, total, _ in sent} == {21}, sent
        assert sent[-1] == (21, 21, "training: crashed")
        assert [n[0] for n in sent if n[2].startswith("training: ")][0] == 11


def one_total(received):
    return len({total for _, total, _ in received}) == 1


async def test_a_training_run_reports_through_the_client_without_a_flood(server_state):
    received = []

    async def progress(done, total, message):
        received.append((done, total, message))

    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", bug=1, variant=1, seed=3)
        began = time.monotonic()
        result = await client.call_tool("run_training", {"interview_id": started["interview_id"], "steps": 12},
                                        progress_callback=progress)
        took = time.monotonic() - began
    assert not result.is_error, result.content[0].text
    check_notifications(received)
    assert len(received) <= 2 * took + 3, f"{len(received)} notifications in {took:.1f} s"
    phases = ("baseline (pristine code): ", "training: ")
    assert all(message.startswith(phases) for _, _, message in received), received
    assert received[-1][2] == "training: step 12 of 12" and received[-1][0] == received[-1][1], received
    assert one_total(received), f"the total changed while the run went on: {received}"

    # the same request again: its baseline is cached, the bar jumps past it and the total holds
    received.clear()
    async with Client(build_server("interviewer")) as client:
        result = await client.call_tool("run_training", {"interview_id": started["interview_id"], "steps": 12},
                                        progress_callback=progress)
    assert not result.is_error, result.content[0].text
    check_notifications(received)
    assert not any(message.startswith("baseline (pristine code): step") for _, _, message in received), received
    assert received[-1][0] == received[-1][1] and one_total(received), received


async def test_verify_fix_progress_grows_across_its_stages(server_state):
    """Each verification stage reports from 0 again (checks, then short runs): the client sees one
    growing progress."""
    def checks(interview, key, report=None):
        report(0, 1, "behavioural checks: running 3")
        report(1, 1, "behavioural checks: done")
        return [StageResult("checks", True)]

    def short_runs(interview, key, report=None):
        report(0, 1, "short training runs against the pristine code: running")
        time.sleep(MIN_GAP_S)  # a run's length: the last note is due by now
        report(1, 1, "short training runs against the pristine code: done")
        return [StageResult("runs", True)]

    received = []

    async def progress(done, total, message):
        received.append((done, total, message))

    server = build_server("interviewer")
    server.bugdrill.verify_stages = [checks, short_runs]
    async with Client(server) as client:
        started = await call(client, "start_interview", kind="code_review", bug=1, variant=1, seed=3)
        result = await client.call_tool("verify_fix", {"interview_id": started["interview_id"]},
                                        progress_callback=progress)
    assert not result.is_error, result.content[0].text
    check_notifications(received)
    assert received[0][2] == "behavioural checks: running 3"
    assert received[-1][2] == "short training runs against the pristine code: done"
    assert one_total(received) and received[-1][0] == received[-1][1], received
