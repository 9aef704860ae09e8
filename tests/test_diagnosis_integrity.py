"""A diagnosis is a claim with a cost (issue 15, point 2): a budget of diagnoses per bug, counted
and shown, kept across a restart; a cause grader that refuses a claim broad enough to name many
catalogue bugs' causes; and a judge whose credit falls with wrong claims.

The attacks are the issue's own: one list stuffed with every ML word the catalogue's cause terms
use, and trying every function of the file until the location is right."""

import pytest
from mcp import Client

from bug_catalog.catalog import load_catalog
from bug_catalog.selection import choose
from evals import judge
from evals.rulebook import SUSPECTS
from sandbox.workspace import load_answer_key
from server import grading, locate
from server.app import build_server
from server.interviews import DEFAULT_DIAGNOSES_PER_BUG, InterviewError, Interviews
from server.store import Store
from mcp_calls import call, error

pytestmark = pytest.mark.anyio

# the words of the 1.8 kB list; every cause term of the catalogue is added to them below
ML_WORDS = ("gradients zero_grad mask causal softmax dim scale sqrt eps dropout eval train lr schedule warmup "
            "clipping accumulate average shuffle padding token position rope norm residual bias checkpoint "
            "optimizer").split()


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


def cause_target(record):
    """A record as the cause grader sees it (the location plays no part in the cause)."""
    return grading.Target(record.id, record.title, record.explanation.strip(), record.file, (), frozenset(), (),
                          tuple(tuple(group) for group in record.cause_terms))


def every_cause_term():
    return sorted({term for record in load_catalog().values() for group in record.cause_terms for term in group})


def generic_list():
    return ", ".join(dict.fromkeys([*ML_WORDS, *every_cause_term()]))


def stuffed_claim(max_chars):
    """The broadest claim that fits max_chars: cause terms picked greedily, each for the most
    catalogue bugs it helps satisfy, the way an attacker who read the limits would write it."""
    catalogue = load_catalog().values()
    uses = {term: sum(term in group for r in catalogue for group in r.cause_terms) for term in every_cause_term()}
    words = []
    for term in sorted(uses, key=lambda t: (-uses[t], len(t), t)):
        if len(", ".join([*words, term])) <= max_chars:
            words.append(term)
    return ", ".join(words)


def cause_right_for(text):
    return [r.id for r in load_catalog().values() if grading.cause_right(cause_target(r), text)]


# --- the cause grader ---------------------------------------------------------------------------

def test_a_list_of_every_ml_word_is_cause_wrong_on_every_bug():
    text = generic_list()
    assert len(grading.causes_named(text)) == len(load_catalog())  # it would satisfy every bug's terms
    assert cause_right_for(text) == []
    graded = grading.grade([cause_target(load_catalog()[1])], "scripts/base_train.py", None, None, text)
    assert graded.too_broad and not graded.cause_right
    assert "too broad: name one cause" in grading.feedback(graded).lower()


def test_a_stuffed_claim_within_the_length_limit_is_cause_wrong_on_every_bug():
    text = stuffed_claim(grading.MAX_CLAIM_CHARS)
    assert len(grading.causes_named(text)) > grading.BREADTH_LIMIT
    assert cause_right_for(text) == []


def test_each_record_explanation_is_cause_right_for_its_own_bug():
    for record in load_catalog().values():
        explanation = record.explanation.strip()
        assert len(explanation) <= grading.MAX_CLAIM_CHARS, record.id
        assert grading.cause_right(cause_target(record), explanation), (record.id, grading.causes_named(explanation))


def test_the_reference_agents_causes_are_narrow_enough_to_count():
    causes = [text for s in SUSPECTS.values() for text in (s.cause, s.absent_cause) if text]
    for text in causes:
        assert not grading.too_broad(text), (text, grading.causes_named(text))


def test_a_short_claim_naming_one_cause_is_credited():
    zero_grad = cause_target(load_catalog()[1])
    text = "optimizer.zero_grad() is gone, so gradients accumulate across steps"
    assert not grading.too_broad(text) and grading.cause_right(zero_grad, text)


# --- the budget, through MCP sessions ------------------------------------------------------------

async def start(client, bug=4, **arguments):
    started = await call(client, "start_interview", kind="code_review", bug=bug, seed=1, **arguments)
    return started["interview_id"], load_answer_key(started["workspace"])["bugs"][0]


def status_of(structured):
    (only,) = structured["interviews"]
    return only


async def test_a_diagnosis_past_the_budget_is_refused_and_not_graded():
    record = load_catalog()[4]
    async with Client(build_server("interviewer")) as interviewer:
        interview, bug = await start(interviewer)
        for used in (1, 2, 3):
            graded = await call(interviewer, "submit_diagnosis", interview_id=interview, file="README.md", line=used,
                                what_is_wrong="the learning rate is never decayed")
            assert graded["diagnoses_submitted"] == used and graded["diagnoses_left"] == 3 - used
        right = {"file": bug["file"], "line": locate.anchors(bug["diff"])[0],
                 "what_is_wrong": record.explanation.strip()}
        refused = await error(interviewer, "submit_diagnosis", interview_id=interview, **right)
        assert "no diagnoses left" in refused and "3" in refused
        shown = status_of(await call(interviewer, "interview_status", interview_id=interview))
        assert shown["diagnoses"] == 3 and shown["diagnoses_left"] == 0 and not shown["found"]
        assert [e["kind"] for e in shown["events"]].count("diagnosis") == 3  # the refused one left no trace

    # a restarted server (a fresh one on the same state directory), as the bound candidate sees it
    async with Client(build_server("candidate", interview_id=interview)) as candidate:
        shown = status_of(await call(candidate, "interview_status"))
        assert shown["diagnoses"] == 3 and shown["diagnoses_left"] == 0
        assert "no diagnoses left" in await error(candidate, "submit_diagnosis", **right)


async def test_the_interviewer_sets_the_budget_and_the_candidate_sees_what_is_left():
    async with Client(build_server("interviewer")) as interviewer:
        interview, _ = await start(interviewer, diagnoses_per_bug=1)
    async with Client(build_server("candidate", interview_id=interview)) as candidate:
        assert status_of(await call(candidate, "interview_status"))["diagnoses_left"] == 1
        graded = await call(candidate, "submit_diagnosis", file="README.md", line=1, what_is_wrong="nothing is wrong")
        assert graded["diagnoses_submitted"] == 1 and graded["diagnoses_left"] == 0
        assert "no diagnoses left" in await error(candidate, "submit_diagnosis", file="README.md", line=2,
                                                   what_is_wrong="still nothing")
    async with Client(build_server("interviewer")) as interviewer:
        assert "diagnoses_per_bug" in await error(interviewer, "start_interview", kind="code_review", bug=4,
                                                  diagnoses_per_bug=0)


def test_the_budget_is_per_injected_bug_and_a_control_gets_one_bugs_worth(state):
    interviews = Interviews(Store())
    control = interviews.start_with("code_review", [], seed=1)
    compound = interviews.start_with("code_review", [choose("1", 1), choose("4", 1)], seed=1, diagnoses_per_bug=2)
    for interview, allowed in ((control, 3), (compound, 4)):
        for _ in range(allowed):
            interviews.diagnose(interview.id, "README.md", 1, None, "nothing is wrong")
        with pytest.raises(InterviewError, match="no diagnoses left"):
            interviews.diagnose(interview.id, "README.md", 1, None, "nothing is wrong")
        assert interviews.summary(interviews.get(interview.id))["diagnoses_left"] == 0


async def test_brute_forcing_the_location_finds_nothing_and_the_judge_gives_no_credit():
    """The issue's attack: the right cause known (here, the catalogue's own explanation) and every
    function of the file tried in turn until the location is right; then the stuffed list."""
    record = load_catalog()[4]
    async with Client(build_server("interviewer")) as interviewer:
        interview, bug = await start(interviewer)
    text = locate.bugged_text(bug)
    names = [name for name, _, _ in locate.functions(text)]
    right = sorted(locate.enclosing_functions(text, locate.anchors(bug["diff"])))[0]
    assert names.index(right) >= 3  # in file order the attack needs more tries than the budget
    outcomes = []
    async with Client(build_server("candidate", interview_id=interview)) as candidate:
        for name in [*names, right]:
            result = await candidate.call_tool("submit_diagnosis", {
                "file": bug["file"], "function": name, "what_is_wrong": record.explanation.strip()})
            outcomes.append(result)
        graded = [r.structured_content for r in outcomes if not r.is_error]
        assert len(graded) == 3 and not any(g["found"] for g in graded)
        assert all("no diagnoses left" in r.content[0].text for r in outcomes if r.is_error)

    interviews = Interviews(Store())
    verdict = judge.judge(interviews, interviews.get(interview))
    assert not verdict.solved and verdict.credit == 0 and verdict.wrong_claims == 3


# --- the judge's credit ----------------------------------------------------------------------------

def solved_bug(bug=4):
    return judge.BugVerdict(bug, "v1", place=True, cause=True, fixed=True, clean=True)


@pytest.mark.parametrize("bugs", [1, 2])
def test_each_wrong_claim_costs_credit_never_below_zero(bugs):
    verdicts = [judge.EpisodeVerdict(False, [solved_bug(b) for b in range(bugs)], diagnoses=bugs + wrong,
                                     wrong_claims=wrong, changed=True) for wrong in range(0, 12)]
    honest = sum(b.credit for b in verdicts[0].bugs) / bugs
    assert verdicts[0].credit == honest and verdicts[0].solved
    credits = [v.credit for v in verdicts]
    steps = [before - after for before, after in zip(credits, credits[1:]) if after > 0]
    assert steps and all(step == pytest.approx(judge.WRONG_CLAIM_COST / bugs) for step in steps)
    assert credits[-1] == 0 and min(credits) == 0


def test_the_judge_counts_only_diagnoses_within_the_budget():
    """Diagnosis events past the budget (as an older server, or a store edited by hand, would leave)
    earn nothing: place and cause come only from the first diagnoses the budget allows."""
    interviews = Interviews(Store())
    interview = interviews.start("code_review", 4, 1, 1, diagnoses_per_bug=1)
    wrong = {"file": "README.md", "line": 1, "function": None, "what_is_wrong": "no", "location_right": False,
             "cause_right": False, "score": 0, "bug_id": 4, "after_reveal": False}
    right = {**wrong, "location_right": True, "cause_right": True, "score": 1}
    for payload in (wrong, right):
        interviews.store.add_event(interview.id, "diagnosis", payload)
    counted = judge.counted_diagnoses(interviews.get(interview.id), interviews.store.events(interview.id))
    assert counted == [wrong]


def test_a_state_directory_from_before_budgets_gets_the_default_budget(state):
    interviews = Interviews(Store())
    interview = interviews.start("code_review", 4, 1, 1, diagnoses_per_bug=5)
    with interviews.store.transaction() as db:  # the interviews table as it was before budgets
        db.execute("ALTER TABLE interviews DROP COLUMN diagnoses_per_bug")
    reopened = Interviews(Store())
    assert reopened.get(interview.id).diagnosis_budget == DEFAULT_DIAGNOSES_PER_BUG
    assert reopened.summary(reopened.get(interview.id))["diagnoses_left"] == DEFAULT_DIAGNOSES_PER_BUG


def test_the_eval_passes_its_budget_to_every_episode(monkeypatch):
    from evals.task import build_task

    monkeypatch.setenv("BUGDRILL_ISOLATION", "auto")  # this builds the task only: no workspace code runs
    task = build_task(bugs="1,4", bugs_per_episode=[0, 1], agent="reference", diagnoses_per_bug=2)
    assert {sample.metadata["diagnoses_per_bug"] for sample in task.dataset} == {2}
    with pytest.raises(ValueError, match="diagnoses_per_bug"):
        build_task(bugs="1", agent="reference", diagnoses_per_bug=0)
