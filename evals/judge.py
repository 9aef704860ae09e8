"""The verdict on one episode, decided by behaviour: each bug's own check on the final
workspace, the graded diagnoses the interview recorded, and, once every bug is fixed, whether
the whole catalogue's checks and a short run against the baseline still pass.

Partial credit per bug, a quarter each: found the place (a diagnosis at the right location),
named the cause (the same diagnosis also gave the right cause), fixed it (its own check
passes AND the workspace's short runs, the one that showed the bug among them, match the
same-seed pristine runs: server/runs.py short_run_stage; in a compound episode where the other
bug is left, on a copy with that bug's file put back as the pristine code's), fixed it cleanly
(every bug fixed, and every other check passes too). A bug counts as solved with all four. A control episode (no bug) is solved when the
agent claimed nothing and changed nothing that breaks a check or the baseline run; otherwise
it is a false positive.

A diagnosis is a claim with a cost. Only the diagnoses within the interview's budget count (in
the order made; the server refuses the rest, and any the store holds past it earn nothing), and
none made after a reveal. Each wrong claim, a counted diagnosis that matches no injected bug's
location, costs WRONG_CLAIM_COST of one bug's credit: the episode's credit is the bugs' mean
less WRONG_CLAIM_COST / (number of bugs) per wrong claim, never below 0. A wrong claim thus
undoes one right quarter. `solved` is unchanged by wrong claims; the credit shows their cost.
"""

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks
from bug_synth.synth_bug import catalogue_only
from sandbox import codebases
from sandbox.codebase import regular_files_copy
from sandbox.workspace import read_codebase
from server.interviews import bug_checks
from server.locate import bugged_text
from server.runs import codebase_of, short_run_stage, trains_like_pristine

WRONG_CLAIM_COST = 0.25  # of one bug's credit: as much as one right quarter earns


@dataclass
class BugVerdict:
    bug: int
    variant: str
    place: bool
    cause: bool
    fixed: bool
    clean: bool

    @property
    def credit(self):
        return (self.place + (self.place and self.cause) + self.fixed + self.clean) / 4

    @property
    def solved(self):
        return self.place and self.cause and self.fixed and self.clean


@dataclass
class EpisodeVerdict:
    control: bool
    bugs: list[BugVerdict]
    diagnoses: int
    wrong_claims: int  # diagnoses that matched no injected bug's location
    changed: bool
    broken: list[str] = field(default_factory=list)  # what failed in the clean stage, when it ran
    false_positive: bool = False

    @property
    def solved(self):
        return not self.false_positive if self.control else all(b.solved for b in self.bugs)

    @property
    def credit(self):
        if self.control:
            return float(not self.false_positive)
        earned = sum(b.credit for b in self.bugs) / len(self.bugs)
        return max(0.0, earned - self.wrong_claims * WRONG_CLAIM_COST / len(self.bugs))

    def as_dict(self):
        return {**asdict(self), "solved": self.solved, "credit": self.credit,
                "bugs": [{**asdict(b), "credit": b.credit, "solved": b.solved} for b in self.bugs]}


def judge(interviews, interview):
    """The EpisodeVerdict of an interview (open or ended); runs checks, so it takes a while."""
    key = interviews.key(interview)
    diagnoses = counted_diagnoses(interview, interviews.store.events(interview.id))
    changed = _changed(interview, key)
    if not key["bugs"]:
        broken = _broken(interview, key, _behaviour(interview, key)) if changed else []
        return EpisodeVerdict(True, [], len(diagnoses), len(diagnoses), changed, broken,
                              false_positive=bool(diagnoses or broken))
    catalog = load_catalog()
    codebase = codebases.of_key(key)
    # a synthesized bug has no check of its own: the runs judge it (and _broken, every check)
    own = {b["id"]: codebase.check_for(catalog[b["id"]]) for b in catalogue_only(key)["bugs"]}
    results = run_checks(str(interview.workspace), sorted(set(own.values()))) if own else {}
    checked = {b["id"]: b["id"] not in own or results[own[b["id"]]]["passed"] for b in key["bugs"]}
    fixed, behaviour = _fixed(interview, key, checked)
    broken = _broken(interview, key, behaviour) if all(fixed.values()) else ["not every bug is fixed"]
    verdicts = []
    for bug in key["bugs"]:
        mine = [d for d in diagnoses if d.get("bug_id") == bug["id"] and d["location_right"]]
        verdicts.append(BugVerdict(bug["id"], bug["variant"], bool(mine), any(d["cause_right"] for d in mine),
                                   fixed[bug["id"]], fixed[bug["id"]] and not broken))
    wrong = sum(1 for d in diagnoses if not d["location_right"])
    return EpisodeVerdict(False, verdicts, len(diagnoses), wrong, changed, broken)


def _fixed(interview, key, checked):
    """({bug id: fixed}, the workspace's runs stage or None). A bug whose own check passes (a
    synthesized one has none) is fixed when the workspace trains like the pristine code. In a
    compound episode where it does not, each such bug is judged alone: on a copy of the workspace
    with the other bugs' files put back as the pristine code's (bugs of one episode never share a
    file), so a fix of one bug counts while the other is still there."""
    if not any(checked.values()):
        return {bug: False for bug in checked}, None
    behaviour = _behaviour(interview, key)
    if behaviour.passed or len(key["bugs"]) == 1:
        return {bug: ok and behaviour.passed for bug, ok in checked.items()}, behaviour
    fixed = {}
    for bug in key["bugs"]:
        others = [other for other in key["bugs"] if other is not bug]
        fixed[bug["id"]] = checked[bug["id"]] and _trains_like_pristine_without(interview, key, others)
    return fixed, behaviour


def _trains_like_pristine_without(interview, key, others):
    """Whether the workspace, with the files of `others` as the pristine code's, trains like it."""
    scratch = Path(tempfile.mkdtemp(prefix="bugdrill-judge-"))
    try:
        copy = regular_files_copy(interview.workspace, scratch / "workspace")
        for other in others:
            (copy / other["file"]).write_text(other["pristine"])
        same, _ = trains_like_pristine(key, copy, label="judge")
        return same
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _behaviour(interview, key):
    """The stage of the workspace's runs against the pristine runs (one StageResult)."""
    (stage,) = short_run_stage(interview, key)
    return stage


def counted_diagnoses(interview, events):
    """The payloads of the diagnoses that count: the first the budget allows, less any after a reveal."""
    made = [e["payload"] for e in events if e["kind"] == "diagnosis"][:interview.diagnosis_budget]
    return [d for d in made if not d.get("after_reveal")]


def _changed(interview, key):
    """Whether any file of the workspace differs from what the episode started with."""
    start = read_codebase(codebase_of(key))
    start.update({bug["file"]: bugged_text(bug) for bug in key["bugs"]})
    return read_codebase(interview.workspace) != start


def _broken(interview, key, behaviour):
    """Names of the failing stages among the catalogue's checks and the runs against the pristine code."""
    stages = [*bug_checks(interview, key), behaviour]
    return [f"{s.name}: {s.detail[:300]}" for s in stages if not s.passed]
