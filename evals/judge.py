"""The verdict on one episode, decided by behaviour: each bug's own check on the final
workspace, the graded diagnoses the interview recorded, and, once every bug is fixed, whether
the whole catalogue's checks and a short run against the baseline still pass.

Partial credit per bug, a quarter each: found the place (a diagnosis at the right location),
named the cause (the same diagnosis also gave the right cause), fixed it (its own check
passes), fixed it cleanly (every other check passes and a short run trains like the
baseline). A bug counts as solved with all four. A control episode (no bug) is solved when the
agent claimed nothing and changed nothing that breaks a check or the baseline run; otherwise
it is a false positive.
"""

from dataclasses import asdict, dataclass, field

from bug_catalog.catalog import load_catalog
from bug_catalog.checking import run_checks
from bug_catalog.targets import check_name  # a nanochat bug is judged by nanochat's check
from sandbox.workspace import read_codebase
from server.interviews import bug_checks
from server.locate import bugged_text
from server.runs import codebase_of, short_run_stage


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
        return sum(b.credit for b in self.bugs) / len(self.bugs)

    def as_dict(self):
        return {**asdict(self), "solved": self.solved, "credit": self.credit,
                "bugs": [{**asdict(b), "credit": b.credit, "solved": b.solved} for b in self.bugs]}


def judge(interviews, interview):
    """The EpisodeVerdict of an interview (open or ended); runs checks, so it takes a while."""
    key = interviews.key(interview)
    events = interviews.store.events(interview.id)
    diagnoses = [e["payload"] for e in events if e["kind"] == "diagnosis" and not e["payload"].get("after_reveal")]
    changed = _changed(interview, key)
    if not key["bugs"]:
        broken = _broken(interview, key) if changed else []
        return EpisodeVerdict(True, [], len(diagnoses), len(diagnoses), changed, broken,
                              false_positive=bool(diagnoses or broken))
    catalog = load_catalog()
    own = {b["id"]: check_name(catalog[b["id"]], b) for b in key["bugs"]}
    results = run_checks(str(interview.workspace), sorted(set(own.values())))
    fixed = {bug: results[check]["passed"] for bug, check in own.items()}
    broken = _broken(interview, key) if all(fixed.values()) else ["not every bug is fixed"]
    verdicts = []
    for bug in key["bugs"]:
        mine = [d for d in diagnoses if d.get("bug_id") == bug["id"] and d["location_right"]]
        verdicts.append(BugVerdict(bug["id"], bug["variant"], bool(mine), any(d["cause_right"] for d in mine),
                                   fixed[bug["id"]], fixed[bug["id"]] and not broken))
    wrong = sum(1 for d in diagnoses if not d["location_right"])
    return EpisodeVerdict(False, verdicts, len(diagnoses), wrong, changed, broken)


def _changed(interview, key):
    """Whether any file of the workspace differs from what the episode started with."""
    start = read_codebase(codebase_of(key))
    start.update({bug["file"]: bugged_text(bug) for bug in key["bugs"]})
    return read_codebase(interview.workspace) != start


def _broken(interview, key):
    """Names of the failing stages among the catalogue's checks and the short run."""
    stages = [*bug_checks(interview, key), *short_run_stage(interview, key)]
    return [f"{s.name}: {s.detail[:300]}" for s in stages if not s.passed]
