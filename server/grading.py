"""Grading a diagnosis by location and cause, against each bug of an interview.

Location: the right file, and a line within LINE_TOLERANCE of a line the injection changed (a
deletion counts at the lines on either side of it), or the function that holds the change.
Cause: the explanation mentions one term of every group of the bug's `cause_terms`, and is not too
broad: a claim that would satisfy the cause terms of more than BREADTH_LIMIT catalogue bugs names
no cause at all (a list of ML words would otherwise pass for every bug). The score is half for
each. A diagnosis is matched against every bug and the best match counts.
"""

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath

from bug_catalog.catalog import load_catalog

LINE_TOLERANCE = 3
# The most catalogue causes that any record's own explanation satisfies (bugs 2 and 11: 9 of 52;
# explanations run 400-850 characters and mention neighbouring mechanisms). The reference agent's
# one-sentence causes satisfy at most 5. tests/test_diagnosis_integrity.py holds both to it.
BREADTH_LIMIT = 9
# "a sentence or two": room for the longest catalogue explanation (848 characters), not for a list
MAX_CLAIM_CHARS = 1000


@dataclass(frozen=True)
class Target:
    """One injected bug as the grader sees it."""
    bug_id: int | str  # a synthesized bug's id is a string
    title: str
    explanation: str
    file: str
    anchors: tuple[int, ...]
    functions: frozenset[str]
    all_functions: tuple[str, ...] = field(default=())  # every function name in the file, to spot ambiguity
    cause_terms: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Grade:
    location_right: bool
    cause_right: bool
    target: Target | None  # the bug the diagnosis matched best (None: no bug at all)
    too_broad: bool = False  # the claim would name the causes of many catalogue bugs

    @property
    def score(self):
        return (self.location_right + self.cause_right) / 2

    @property
    def found(self):
        return self.location_right and self.cause_right


def same_file(given, target):
    """Accepts the path as given in the workspace, with ./ or a leading workspace path, or by its
    name alone when that is unambiguous enough (the name must end the target's path)."""
    given = given.strip().replace("\\", "/")
    if not given:
        return False
    parts = [p for p in PurePosixPath(given).parts if p not in (".", "/")]
    target_parts = PurePosixPath(target).parts
    if not parts:
        return False
    n = min(len(parts), len(target_parts))
    return tuple(parts[-n:]) == tuple(target_parts[-n:])


def same_function(given, target):
    given = (given or "").strip().rstrip("()").strip()
    if not given:
        return False
    for name in target.functions:
        if given == name:
            return True
        bare = name.rsplit(".", 1)[-1]
        if given == bare and sum(f.rsplit(".", 1)[-1] == bare for f in target.all_functions) == 1:
            return True
    return False


def location_right(target, file, line, function):
    if not same_file(file, target.file):
        return False
    if line is not None and any(abs(line - anchor) <= LINE_TOLERANCE for anchor in target.anchors):
        return True
    return same_function(function, target)


def meets_terms(cause_terms, lowered_text):
    return bool(cause_terms) and all(any(term in lowered_text for term in group) for group in cause_terms)


@lru_cache(maxsize=1)
def catalogue_causes():
    """(bug id, cause_terms) of every catalogue bug: what a claim's breadth is measured against."""
    return tuple((record.id, tuple(tuple(group) for group in record.cause_terms))
                 for record in load_catalog().values())


def causes_named(text):
    """The ids of the catalogue bugs whose cause terms the claim satisfies."""
    lowered = (text or "").lower()
    return [bug_id for bug_id, terms in catalogue_causes() if meets_terms(terms, lowered)]


def too_broad(text):
    return len(causes_named(text)) > BREADTH_LIMIT


def cause_right(target, text):
    return meets_terms(target.cause_terms, (text or "").lower()) and not too_broad(text)


def grade(targets, file, line, function, text):
    broad = too_broad(text)
    best = Grade(False, False, None, broad)
    for target in targets:
        # the breadth is the claim's, whatever the target: computed once, not per target
        named = not broad and meets_terms(target.cause_terms, (text or "").lower())
        candidate = Grade(location_right(target, file, line, function), named, target, broad)
        if best.target is None or (candidate.score, candidate.location_right) > (best.score, best.location_right):
            best = candidate
    return best


def feedback(grade):
    """What the candidate is told: right or wrong, never which bug."""
    if grade.found:
        return "Location and cause both right."
    if grade.too_broad:
        place = "right place" if grade.location_right else "the location is not right either"
        return (f"Too broad: name one cause. The explanation would fit the causes of many different bugs, so it "
                f"names none of them ({place}).")
    if grade.location_right:
        return "Right place; the cause is not there yet: say what exactly is wrong and why it breaks training."
    if grade.cause_right:
        return "The cause sounds right, but the location is not: point at the file and line where it happens."
    return "Not it: neither the location nor the cause matches."
