"""Where the code half of the catalogue registers itself: edits that inject a variant, and
behavioural checks that tell a buggy codebase from a fixed one.

    @edit("zero-grad.deleted", file="scripts/base_train.py")
    def _(source: str) -> str: ...          # pristine text of that file -> buggy text

    @check("zero-grad")
    def _(workspace: Path) -> None: ...     # raises AssertionError while the bug is present

Edits are pure functions of one file's text, so they can be tested without a workspace.
Checks run in a child process whose working directory is the workspace and whose
sys.path starts with it, so they import the candidate's code as it is on disk.
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Edit:
    name: str
    file: str
    apply: Callable[[str], str]


EDITS: dict[str, Edit] = {}
CHECKS: dict[str, Callable] = {}


def edit(name, file):
    def register(fn):
        if name in EDITS:
            raise ValueError(f"edit {name!r} registered twice")
        EDITS[name] = Edit(name, file, fn)
        return fn

    return register


def check(name):
    def register(fn):
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = fn
        return fn

    return register


class EditError(Exception):
    """An edit could not find the construct it changes: the codebase has no home for it."""
