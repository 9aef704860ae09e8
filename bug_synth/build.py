"""Building a pool: every mutant the operators make on a checkout, measured in turn until the
budget is spent, families taking turns so a short build samples every family.

Resumable: a mutant the pool has tried is never measured again, so a second build with the same
families goes on where the first stopped. The report counts, per family, what every build of
this pool has tried (candidates, compiled, observable, equivalent, kept) and this build's rate."""

import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from bug_synth import operators
from bug_synth.measure import measure, plain_request, requests_for_file
from bug_synth.pool import Pool
from bug_synth.reach import Reach, runs_reaching
from bug_synth.synth_bug import mutant_id
from sandbox.codebases import CodebaseError
from sandbox.runner import RunError
from sandbox.workspace import read_codebase

MAX_WORKERS = 16


class BuildError(ValueError):
    """Bad input for a build: the message says what is accepted."""


@dataclass
class BuildReport:
    pool: Pool
    measured: int = 0  # mutants decided by this build: run, or unreached (not run)
    unreached: int = 0
    kept: int = 0
    seconds: float = 0.0
    workers: int = 1
    stopped_by: str = ""  # "budget", "limit" or "exhausted"
    unrunnable: int = 0  # mutants in files no scenario runs
    candidates: Counter = field(default_factory=Counter)

    def per_cpu_hour(self, count=None):
        """Mutants per CPU-hour (workers x wall time): every one decided, or `count` of them."""
        cpu_hours = self.seconds * self.workers / 3600
        return (self.measured if count is None else count) / cpu_hours if cpu_hours else 0.0


def ordered(mutants, seed):
    """Families in turn (each one's mutants shuffled with the seed), so any prefix is a fair sample."""
    by_family = {}
    for mutant in mutants:
        by_family.setdefault(mutant.family, []).append(mutant)
    rng = random.Random(f"synth-order:{seed}")
    queues = []
    for name in sorted(by_family):
        queue = list(by_family[name])
        rng.shuffle(queue)
        queues.append(queue)
    while any(queues):
        for queue in queues:
            if queue:
                yield queue.pop(0)


MAX_SCENARIOS = 10
DEFAULT_SCENARIOS = 2  # runs after the first an equivalent mutant is tried in


def check_inputs(budget_minutes, workers, limit, scenarios=DEFAULT_SCENARIOS):
    if not (isinstance(scenarios, int) and 0 <= scenarios <= MAX_SCENARIOS):
        raise BuildError(f"scenarios must be a whole number from 0 to {MAX_SCENARIOS}, not {scenarios!r}")
    if not (isinstance(budget_minutes, (int, float)) and 0 < budget_minutes <= 24 * 60):
        raise BuildError(f"the budget must be more than 0 and at most 1440 minutes, not {budget_minutes!r}")
    if not (isinstance(workers, int) and 1 <= workers <= MAX_WORKERS):
        raise BuildError(f"workers must be a whole number from 1 to {MAX_WORKERS}, not {workers!r}")
    if limit is not None and not (isinstance(limit, int) and limit >= 1):
        raise BuildError(f"the mutant limit must be a whole number of at least 1, not {limit!r}")


def candidate_mutants(codebase, source, families=None):
    """({path: text} of the files mutants may change, [every mutant the families make there])."""
    files = {path: text for path, text in read_codebase(source).items() if path in codebase.mutable_files(source)}
    try:
        return files, list(operators.mutants(files, families))
    except ValueError as error:
        raise BuildError(str(error)) from None


def build(codebase, source, families=None, budget_minutes=10.0, workers=1, steps=None, limit=None, seed=0,
          on_progress=None, scenarios=DEFAULT_SCENARIOS):
    """Measure untried mutants until the budget (minutes of wall time) or `limit` (mutants) runs
    out; returns a BuildReport. on_progress(done, total, message) after each one. A mutant is
    measured only in runs whose pristine run reaches the statement it changed (bug_synth/reach.py);
    equivalent in its first, it is tried in up to `scenarios` more such runs."""
    check_inputs(budget_minutes, workers, limit, scenarios)
    files, candidates = candidate_mutants(codebase, source, families)
    pool = Pool(codebase, source)
    report = BuildReport(pool, workers=workers, candidates=Counter(m.family for m in candidates))
    requests = {}
    try:
        for path in sorted({m.file for m in candidates}):
            requests[path] = requests_for_file(codebase, source, path, steps)
    except CodebaseError as error:
        raise BuildError(f"--steps: {error}") from None
    tried = pool.tried()
    todo = [m for m in ordered(candidates, seed) if requests[m.file] and mutant_id(m) not in tried]
    report.unrunnable = sum(1 for m in candidates if not requests[m.file])
    cut = limit is not None and len(todo) > limit
    todo = todo[:limit] if cut else todo
    plain = plain_request(codebase, steps)
    started = time.time()
    deadline = started + budget_minutes * 60
    firsts = [runs[0] for runs in requests.values() if runs]  # the others' baselines are made when first needed
    reach = Reach(codebase, source, pool.root)
    for request in {r.model_dump_json(): r for r in firsts}.values():
        try:  # once, before the workers queue on its lock; a codebase that does not train stops here
            codebase.baseline(source, request)
        except RunError as error:
            raise BuildError(f"the pristine checkout does not train: {error}") from None
    scratch = tempfile.mkdtemp(prefix="bugdrill-synth-")
    lock = threading.Lock()

    def one(mutant):
        runs = runs_reaching(reach, mutant.file, files[mutant.file], mutant.text, requests[mutant.file],
                             1 + scenarios)
        if runs:
            row, bug = measure_in_turn(codebase, source, mutant, runs, scratch, plain)
        else:
            row, bug = unreached(mutant, requests[mutant.file]), None
        if bug is not None:
            bug.digest = pool.digest
        pool.record(row, bug, mutant.text if bug else None)
        with lock:
            report.measured += 1
            report.unreached += row["outcome"] == "unreached"
            report.kept += bug is not None
            if on_progress:
                on_progress(report.measured, len(todo), f"{report.measured} measured, {report.kept} kept")

    try:
        out_of_time = _run(todo, one, workers, deadline)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.seconds = time.time() - started
    report.stopped_by = "budget" if out_of_time else "limit" if cut else "exhausted"
    return report


def unreached(mutant, requests):
    """The row of a mutant whose changed statement no pristine run of its file executes: not run."""
    names = [getattr(r, "scenario", None) or "default" for r in requests]
    return {"id": mutant_id(mutant), "family": mutant.family, "file": mutant.file, "line": mutant.line,
            "outcome": "unreached", "tried_in": [], "seconds": 0.0,
            "detail": f"the pristine runs that execute {mutant.file} ({', '.join(names)}) never run the changed "
                      "statement"}


def measure_in_turn(codebase, source, mutant, runs, scratch, plain):
    """(tried row, SynthBug or None): the mutant in its first run, then in the next while it stays
    equivalent; the row names every run it was tried in and counts their seconds together."""
    row, bug, tried_in, seconds = None, None, [], 0.0
    for request in runs:
        name = getattr(request, "scenario", None) or "default"
        this, found = measure(codebase, source, mutant, request, scratch, is_default=request == plain)
        if this["outcome"] == "baseline_failed" and row is not None:  # the runs so far stand
            row["detail"] = f"not tried in {name}: its pristine run failed"
            break
        seconds += this.get("seconds", 0.0)
        tried_in.append(name)
        row, bug = {**this, "tried_in": list(tried_in), "seconds": round(seconds, 1)}, found
        if row["outcome"] != "equivalent":
            break
    return row, bug


def _run(todo, one, workers, deadline):
    """Submit while the deadline allows; the runs under way are let finish. True when the
    deadline left mutants unmeasured."""
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running = set()
        while True:
            while len(running) < workers and time.time() < deadline:
                mutant = next(queue, None)
                if mutant is None:
                    break
                running.add(pool.submit(one, mutant))
            if not running:
                return time.time() >= deadline and next(queue, None) is not None
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()


def family_table(pool, candidates):
    """Rows per family over everything the pool has tried, with this build's candidate counts."""
    rows = {}
    for row in pool.tried().values():
        counts = rows.setdefault(row["family"], Counter())
        counts["tried"] += 1
        counts[row["outcome"]] += 1
    table = []
    for name in sorted(set(rows) | set(candidates)):
        counts = rows.get(name, Counter())
        compiled = counts["tried"] - counts["does_not_compile"]
        table.append({"family": name, "candidates": candidates.get(name, 0), "tried": counts["tried"],
                      "compiled": compiled, "unreached": counts["unreached"],
                      "observable": counts["kept"] + counts["no_symptom"],
                      "equivalent": counts["equivalent"], "kept": counts["kept"]})
    return table
