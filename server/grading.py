"""Grading a diagnosis by location and cause, against each bug of an interview.

Location: the right file, and a line within LINE_TOLERANCE of a line the injection changed (a
deletion counts at the lines on either side of it), or the function that holds the change.
Cause: the explanation mentions one term of every group of the bug's `cause_terms`. The score is
half for each. A diagnosis is matched against every bug and the best match counts.
"""

from dataclasses import dataclass, field
from pathlib import PurePosixPath

LINE_TOLERANCE = 3


@dataclass(frozen=True)
class Target:
    """One injected bug as the grader sees it."""
    bug_id: int
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


def cause_right(target, text):
    text = (text or "").lower()
    return bool(target.cause_terms) and all(any(term in text for term in group) for group in target.cause_terms)


def grade(targets, file, line, function, text):
    best = Grade(False, False, None)
    for target in targets:
        candidate = Grade(location_right(target, file, line, function), cause_right(target, text), target)
        if best.target is None or (candidate.score, candidate.location_right) > (best.score, best.location_right):
            best = candidate
    return best


def feedback(grade):
    """What the candidate is told: right or wrong, never which bug."""
    if grade.found:
        return "Location and cause both right."
    if grade.location_right:
        return "Right place; the cause is not there yet: say what exactly is wrong and why it breaks training."
    if grade.cause_right:
        return "The cause sounds right, but the location is not: point at the file and line where it happens."
    return "Not it: neither the location nor the cause matches."
