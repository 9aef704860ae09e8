"""Which two bugs can share a workspace: a compound episode gives a verdict per bug, so each
bug's check must judge its own bug alone.

A pair is compatible when the two variants edit different files, use different checks, and
each bug's check passes on a workspace holding only the other bug: then, with both present,
fixing one bug turns its own check green whatever the other is doing. Checking costs one
batch of two checks (a few seconds), so verdicts are cached in the state directory by codebase.
"""

import fcntl
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bug_catalog.checking import run_checks_each
from bug_catalog.registry import EDITS
from bug_catalog.targets import check_name
from sandbox.baselines import codebase_digest
from sandbox.state import state_dir
from sandbox.workspace import apply_variants, read_codebase, write_tree


def pair_key(first, second):
    """A cache key for two (record, variant) picks, independent of their order."""
    return "|".join(sorted(f"{record.id}:{variant.name}" for record, variant in (first, second)))


def check_of(pick):
    """The check that judges a (record, variant) pick: a nanochat variant is judged by nanochat's."""
    record, variant = pick
    return check_name(record, {"edit": variant.edit})


def compatible(codebase, first, second):
    """(compatible, reason) for two (record, variant) picks, as injected into the codebase; cached."""
    if EDITS[first[1].edit].file == EDITS[second[1].edit].file:
        return False, "both edit the same file"
    if check_of(first) == check_of(second):
        return False, "both are judged by the same check"
    digest = codebase_digest(codebase)
    with _cache() as cache:
        known = cache.get(digest, {}).get(pair_key(first, second))
    if known is not None:
        return tuple(known)
    verdict = _measure(codebase, first, second)
    with _cache(write=True) as cache:
        cache.setdefault(digest, {})[pair_key(first, second)] = list(verdict)
    return verdict


def _measure(codebase, first, second):
    pristine = read_codebase(codebase)
    orders = ((first, second), (second, first))
    with tempfile.TemporaryDirectory(prefix="bugdrill-pair-") as scratch:
        jobs = []
        for index, (present, judged) in enumerate(orders):
            files = dict(pristine)
            apply_variants(files, [present])
            workspace = Path(scratch) / f"workspace-{index}"
            write_tree(workspace, files, 0)
            jobs.append((workspace, [check_of(judged)]))
        # both copies hold catalogue edits only, our own code: one batch
        results = run_checks_each(jobs)
    for (present, judged), result in zip(orders, results):
        (verdict,) = result.values()
        if not verdict["passed"]:
            return False, (f"bug {judged[0].id}'s check fails while only bug {present[0].id} is present: "
                           f"{verdict['detail'][:200]}")
    return True, "each check passes with only the other bug present"


@contextmanager
def _cache(write=False):
    """The cache file, read (and written back when `write`) under an exclusive lock."""
    path = state_dir() / "pairs.json"
    with open(state_dir() / "pairs.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = json.loads(path.read_text()) if path.exists() else {}
        yield cache
        if write:
            path.write_text(json.dumps(cache, indent=1, sort_keys=True))
