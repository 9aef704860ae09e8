"""A pool's measurements kept with the project, so that a pool outlives the machine and the state
directory that measured it: bug_synth/ledgers/<codebase>-<digest>.jsonl, one row per mutant tried.

A row holds what was measured (outcome, the runs it was tried in, their seconds, and for a kept
mutant its evidence: the request that showed it, symptoms, summary, departure step, difficulty)
under the mutant's id, and never the mutant: its family, file, line, mutated text, diff and cause
are made again by the operators from the pristine checkout of that digest, and a row whose id they
no longer make is left out. So a ledger publishes no patch and maps no symptom to a place, and it
cannot bring a mutant into a pool that the operators of this version do not make.

A pool takes its ledger's rows the first time it is opened (bug_synth/pool.py), so a fresh
install draws from what earlier builds measured and a build goes on where they stopped.
`bugdrill synth --save-ledger` writes a pool's rows back (what a developer commits after a build).
BUGDRILL_SYNTH_LEDGERS names another folder of ledgers (the tests use an empty one)."""

import hashlib
import json
import os
from pathlib import Path

from bug_synth.synth_bug import from_mutant, mutant_id

FOLDER = Path(__file__).parent / "ledgers"
# what a tried row measured; its family, file and line are the mutant's, made again, and the id of
# its training run names a run directory of one machine
MEASURED_FIELDS = ("id", "outcome", "tried_in", "seconds", "classes", "detail")
# what a kept mutant's runs showed; the rest of a SynthBug is made again from the mutant
EVIDENCE_FIELDS = ("request", "commands", "symptoms", "summary", "departs_at", "steps", "difficulty", "evidence")


def folder():
    return Path(os.environ.get("BUGDRILL_SYNTH_LEDGERS") or FOLDER)


def path_of(pool):
    return folder() / f"{pool.root.name}.jsonl"


def read(path):
    """{mutant id: ledger row} of a ledger file (nothing when there is none)."""
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {row["id"]: row for row in rows}


def rows_of(pool):
    """The pool's measurements as ledger rows, sorted by id."""
    kept = {bug.id: bug for bug in pool.kept()}
    rows = []
    for mutant_key, tried in sorted(pool.tried().items()):
        row = {name: tried[name] for name in MEASURED_FIELDS if name in tried}
        if mutant_key in kept:
            row["kept"] = {name: getattr(kept[mutant_key], name) for name in EVIDENCE_FIELDS}
        rows.append(row)
    return rows


def save(pool):
    """Write the pool's rows as its ledger; returns (path, rows written)."""
    path = path_of(pool)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = rows_of(pool)
    path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    return path, len(rows)


def fingerprint(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


def missing(pool, rows):
    """The ledger rows the pool has not tried yet."""
    tried = pool.tried()
    return [row for key, row in rows.items() if key not in tried]


def seed(pool, make_mutants, append):
    """Record in the pool, with append(row, bug, text) (the pool holds its lock), every ledger
    row it lacks whose mutant the operators still make; make_mutants() gives the checkout's
    candidate mutants. Returns how many rows were taken."""
    rows = missing(pool, read(path_of(pool)))
    if not rows:
        return 0
    made = {mutant_id(m): m for m in make_mutants()}
    taken = 0
    for row in rows:
        mutant = made.get(row["id"])
        if mutant is None:
            continue
        tried = {"family": mutant.family, "file": mutant.file, "line": mutant.line,
                 **{name: row[name] for name in MEASURED_FIELDS if name in row}}
        bug = None
        if row.get("kept"):
            bug = from_mutant(mutant, pool.codebase.name, pool.source, **row["kept"])
            bug.digest = pool.digest
        append(tried, bug, mutant.text if bug else None)
        taken += 1
    return taken
