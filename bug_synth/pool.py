"""A pool of synthesized bugs for one pristine checkout, in the state directory:

    synth/<codebase>-<digest>/kept.jsonl     one SynthBug per line: the mutants a run kept
    synth/<codebase>-<digest>/tried.jsonl    every mutant measured, kept or not, and its outcome
    synth/<codebase>-<digest>/texts/<id>.py  the mutated file of each kept mutant

Appends only, under a lock, so a build can be stopped and resumed (a mutant already tried is
not measured again) and two builds can share a pool. A pool first takes what the project's
ledger of this checkout holds (bug_synth/ledger.py: measurements only, the mutants made again by
the operators), so what earlier builds measured on other machines is drawn from and not measured
again. Never exported as a patch: a synthesized bug's text and diff exist only here and in the
answer keys of the interviews it was drawn into."""

import fcntl
import json
import random
from contextlib import contextmanager
from dataclasses import asdict

from bug_synth.synth_bug import SynthBug
from sandbox.baselines import codebase_digest
from sandbox.state import state_dir

OUTCOMES = ("kept", "equivalent", "unreached", "no_symptom", "does_not_compile", "baseline_failed",
            "setup_failed")


class PoolError(ValueError):
    """A pool that has nothing to give: the message says how to build one."""


class Pool:
    def __init__(self, codebase, source):
        self.codebase, self.source = codebase, source
        self.digest = codebase_digest(source)
        self.root = state_dir() / "synth" / f"{codebase.name}-{self.digest}"
        (self.root / "texts").mkdir(parents=True, exist_ok=True)
        self._take_ledger()

    def _take_ledger(self):
        """Once per version of the ledger: record the rows of it this pool lacks."""
        from bug_synth import ledger
        from bug_synth.build import candidate_mutants

        path, marker = ledger.path_of(self), self.root / "ledger-taken"
        taken = ledger.fingerprint(path)
        if not taken or (marker.exists() and marker.read_text() == taken):
            return
        with self._locked():
            ledger.seed(self, lambda: candidate_mutants(self.codebase, self.source)[1], self._append)
            marker.write_text(taken)

    @contextmanager
    def _locked(self):
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _rows(self, name):
        path = self.root / name
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a build that was killed mid-write
                continue
        return rows

    def tried(self):
        """{mutant id: its tried row}."""
        return {row["id"]: row for row in self._rows("tried.jsonl")}

    def kept(self):
        return [SynthBug(**row) for row in self._rows("kept.jsonl")]

    def record(self, row, bug=None, text=None):
        """Append one measured mutant (and, when kept, its bug and mutated text)."""
        with self._locked():
            self._append(row, bug, text)

    def _append(self, row, bug, text):
        if bug is not None:
            (self.root / "texts" / f"{bug.id}.py").write_text(text)
            with open(self.root / "kept.jsonl", "a") as kept:
                kept.write(json.dumps(asdict(bug)) + "\n")
        with open(self.root / "tried.jsonl", "a") as tried:
            tried.write(json.dumps(row) + "\n")

    def text(self, bug_id):
        return (self.root / "texts" / f"{bug_id}.py").read_text()

    def get(self, bug_id):
        found = next((bug for bug in self.kept() if bug.id == bug_id), None)
        if found is None:
            raise PoolError(f"no synthesized bug {bug_id!r} in the pool of this {self.codebase.name} checkout")
        return found

    def pick(self, bug_id=None, seed=0, difficulty=None):
        """(SynthBug, its mutated text): the bug named, or one drawn with the seed."""
        bug = self.get(bug_id) if bug_id else self.draw(seed, difficulty=difficulty)
        try:
            return bug, self.text(bug.id)
        except OSError as error:
            raise PoolError(f"synthesized bug {bug.id}'s mutated file is missing from the pool: {error}") from None

    def draw(self, seed, exclude=(), difficulty=None):
        """One kept bug, drawn with the seed (families first, so a pool rich in one family does not
        make every draw that family's)."""
        bugs = [b for b in self.kept() if b.id not in exclude and (difficulty is None or b.difficulty == difficulty)]
        if not bugs:
            raise PoolError(f"the synthesized-bug pool of this {self.codebase.name} checkout has no bug"
                            f"{f' of difficulty {difficulty}' if difficulty else ''} to draw: build one with "
                            "`bugdrill synth`")
        rng = random.Random(f"synth:{seed}")
        family = rng.choice(sorted({b.family for b in bugs}))
        return rng.choice(sorted((b for b in bugs if b.family == family), key=lambda b: b.id))
