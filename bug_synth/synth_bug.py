"""A synthesized bug as a pool keeps it and an answer key carries it: the mutant, the cause a
grader uses, and what the run that kept it showed (its request, symptom classes, summary, the
step it departed from the baseline, the difficulty that evidence gives).

The same facts that a catalogue record holds in prose are here measured, per mutant: the hints
are made from them (symptom, then file, then function) and `reveal` shows them as they are."""

import difflib
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.sentences import first_sentence
from sandbox.workspace import InjectedBug, WorkspaceError

SLUG = "synthesized"


@dataclass
class SynthBug:
    id: str
    codebase: str  # the codebase's name (sandbox/codebases)
    digest: str  # the pristine checkout's digest the mutant was made on
    family: str
    file: str
    line: int
    function: str
    before: str
    after: str
    cause: str
    cause_terms: list[list[str]]
    pristine_sha: str  # of the pristine text of `file`: a pool entry applies to that text only
    request: dict = field(default_factory=dict)  # the run that showed it, as the codebase's request
    commands: list[str] = field(default_factory=list)
    symptoms: list[str] = field(default_factory=list)
    summary: str = ""
    departs_at: int | None = None  # the step its curves first leave the baseline's
    steps: int = 0  # steps the measured run logged
    difficulty: str = ""
    evidence: str = ""  # why that difficulty

    def hints(self):
        where = f" of {self.function}" if self.function else ""
        return [f"Compare the run with the pristine baseline ({', '.join(self.symptoms)}): {first_sentence(self.summary)}",
                f"What goes wrong is in {self.file}.",
                f"Look at the code{where} in {self.file}, around line {self.line}."]

    def injected(self, files, text):
        """The InjectedBug entry of an answer key, with `files[self.file]` replaced by `text`."""
        pristine = files.get(self.file)
        if pristine is None or sha(pristine) != self.pristine_sha:
            raise WorkspaceError(f"synthesized bug {self.id} was made on another version of {self.file}")
        files[self.file] = text
        diff = "".join(difflib.unified_diff(pristine.splitlines(True), text.splitlines(True), f"a/{self.file}",
                                            f"b/{self.file}"))
        return InjectedBug(self.id, SLUG, self.family, f"synth/{self.family}", self.file, diff, pristine,
                           synth=asdict(self))


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def from_mutant(mutant, codebase_name, source, **evidence):
    """The SynthBug of a mutant of the pristine checkout `source`, with what its runs showed
    (the fields after pristine_sha); its digest is the pool's to set."""
    return SynthBug(id=mutant_id(mutant), codebase=codebase_name, digest="", family=mutant.family, file=mutant.file,
                    line=mutant.line, function=mutant.function, before=mutant.before, after=mutant.after,
                    cause=mutant.cause, cause_terms=[list(group) for group in mutant.cause_terms],
                    pristine_sha=sha((Path(source) / mutant.file).read_text()), **evidence)


def mutant_id(mutant):
    """Names the mutant by its content; says nothing of its family, file or line."""
    return "s" + hashlib.sha256(f"{mutant.file}\0{mutant.text}".encode()).hexdigest()[:11]


def from_entry(entry):
    """The SynthBug an answer key's bug entry carries, or None for a catalogue bug."""
    facts = entry.get("synth")
    return SynthBug(**facts) if facts else None


def catalogue_only(key):
    """The answer key with its synthesized bugs left out: what catalogue-keyed code reads."""
    return {**key, "bugs": [b for b in key["bugs"] if not b.get("synth")]}


def synthesized(key):
    return [from_entry(b) for b in key["bugs"] if b.get("synth")]


def opening_request(codebase, key):
    """The request an interview's runs start from: a synthesized bug's is the run that showed it
    (a scenario's own defaults, shared by every mutant of files that scenario runs)."""
    from bug_synth.measure import request_from

    first = synthesized(key)
    if first and key["bugs"][0].get("synth"):
        return request_from(codebase, first[0].request)
    return codebase.default_request(catalogue_only(key))


def fix_requests(codebase, key, floor_steps=60):
    """The runs a fix is judged by: the codebase's short runs, and each synthesized bug's measured
    run cut to the steps that cover where it departed from the baseline (at least floor_steps)."""
    from bug_synth.measure import request_from

    requests = list(codebase.behaviour_requests(catalogue_only(key)))
    for bug in synthesized(key):
        request = request_from(codebase, bug.request)
        needed = max(floor_steps, (bug.departs_at or 0) + 10)
        if (request.steps or bug.steps) > needed:  # no steps: the scenario's own, which the run logged
            request = request.model_copy(update={"steps": needed})
        if request not in requests:
            requests.append(request)
    return requests
