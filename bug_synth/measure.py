"""Measuring one mutant: inject it into a copy of the pristine checkout, run it (in the jail) in
the scenario that runs its file, and classify the run against the same-seed pristine baseline.

Outcomes (pool.OUTCOMES): `kept` when the run shows a symptom class; `equivalent` when its
curves never leave the baseline's and nothing is classified (the same training: the mutant
changes nothing a run can see); `no_symptom` when the curves depart but no symptom class is
observed (a change too small to call a bug); `does_not_compile`; `baseline_failed`;
`setup_failed` when its training fails before its first stage (no stage to show a symptom with).

A mutant equivalent in its first run is measured again in the next scenarios that execute its
file (up to `build`'s `scenarios`): a change to a collective, a mask or a cast may be invisible
in one process and plain in two ranks or with padding. Its outcome is `equivalent` only in the
runs it was tried in, and the row names them.

Difficulty comes from the evidence, never from the operator:
  easy    the run crashed and its traceback names the mutated line (or the line next to it);
  medium  a symptom in the aggregate curves (loss, validation, grad norm, lr) or a crash elsewhere;
  hard    only in the script's other metrics, samples, warnings or memory, or only in a
          scenario other than the default run.
"""

import shutil
import tempfile
import time
from pathlib import Path

from bug_synth.synth_bug import from_mutant, mutant_id
from sandbox.codebase import copy_codebase
from sandbox.runner import RunError
from sandbox.symptoms import classify, departure_point, traceback_origin
from sandbox.teardown_retry import again_after_teardown_abort
from sandbox.training import training_data

NOT_SYMPTOMS = {"no_visible_effect", "departs_from_baseline"}
ALONE_IS_NOISE = {"throughput_drop"}  # a loaded machine shows it by itself
# a mutant may hang (a loop whose bound it changed): its run gets a few times the baseline's wall
# time, at least MIN_WALL_S, and a run stopped there is classified `timed_out` like any other,
# once a second run with RETRY_FACTOR times that limit was stopped too: on a loaded machine a
# run that only waited for a CPU also passes the first limit, and that is no bug's symptom
WALL_FACTOR = 4
MIN_WALL_S = 60
RETRY_FACTOR = 2
AGGREGATE = {"crashed", "nonfinite", "diverged", "not_learning", "below_entropy_floor", "slower_than_baseline",
             "better_than_baseline", "train_val_gap", "train_loss_off", "lr_schedule_off", "grad_norm_off",
             "timed_out", "memory_limit", "stopped_early", "did_not_stop_early"}


def default_request(codebase):
    return codebase.default_request({"bugs": []})


def plain_request(codebase, steps=None):
    """The codebase's default run, with `steps` if given: the run a mutant is measured in unless
    its file is a script only another scenario runs."""
    return codebase.request(default_request(codebase), steps=steps)


def request_from(codebase, data):
    """A stored request (a dict) as the codebase's own request type."""
    return type(default_request(codebase)).model_validate(data)


def requests_for_file(codebase, source, file, steps=None):
    """The runs that execute `file`, the one a mutant is measured in first leading: the codebase's
    default run, unless the file is a script that only other scenarios run; then the other
    scenarios whose commands run it (a library module: every one). Empty when none runs it."""
    module = file.removesuffix(".py").replace("/", ".")
    default = plain_request(codebase, steps)
    others = [codebase.request(default_request(codebase), scenario=name, steps=steps)
              for name in codebase.scenarios if name != getattr(default, "scenario", None)]
    names = {module, file}
    runs_it = [r for r in [default, *others] if any(names & set(c.split()) for c in codebase.commands(r))]
    if runs_it:
        return runs_it
    if '__name__ == "__main__"' in (Path(source) / file).read_text():
        return []
    return [default, *others]  # imported by what the scripts run


def request_for_file(codebase, source, file, steps=None):
    """The run a mutant of `file` is measured in first; None when no scenario runs it."""
    found = requests_for_file(codebase, source, file, steps)
    return found[0] if found else None


def bounded(request, baseline_wall_s):
    """The request with a wall-time limit fit for a mutant that may hang (the baseline's key leaves
    the limit out, so the same cached baseline serves)."""
    if "wall_s" not in type(request).model_fields:
        return request
    return request.model_copy(update={"wall_s": min(request.wall_s, max(MIN_WALL_S, WALL_FACTOR * baseline_wall_s))})


def symptoms_of(classes):
    found = [c for c in classes if c not in NOT_SYMPTOMS]
    return [] if set(found) <= ALONE_IS_NOISE else found


def difficulty(classes, origin, mutant, is_default):
    if "crashed" in classes and origin and origin.startswith(f"{mutant.file}:"):
        line = int(origin.split(":")[1].split()[0])
        if abs(line - mutant.line) <= 1:
            return "easy", f"it crashes and the traceback names {origin}"
    if not is_default:
        return "hard", "it shows only in a scenario other than the default run"
    if set(classes) & AGGREGATE:
        return "medium", "it shows in the aggregate curves of the default run"
    return "hard", "it shows only in the script's metrics, samples, warnings or memory"


def measure(codebase, source, mutant, request, scratch, is_default=True):
    """(tried row, SynthBug or None). Runs the mutant once; the baseline comes from the cache."""
    started = time.time()
    row = {"id": mutant_id(mutant), "family": mutant.family, "file": mutant.file, "line": mutant.line}
    try:
        compile(mutant.text, mutant.file, "exec")
    except (SyntaxError, ValueError):
        return {**row, "outcome": "does_not_compile", "seconds": 0.0}, None
    try:
        pristine = codebase.baseline(source, request)
        base = training_data(pristine)
    except RunError as error:
        return {**row, "outcome": "baseline_failed", "detail": str(error)[:300], "seconds": 0.0}, None
    limited = bounded(request, pristine.wall_s)
    workspace = Path(tempfile.mkdtemp(dir=scratch)) / codebase.workspace_name(source)
    try:
        copy_codebase(source, workspace)
        (workspace / mutant.file).write_text(mutant.text)
        training = again_after_teardown_abort(lambda: codebase.train(workspace, limited, label="synth"))
        if training.state == "timed_out" and "wall_s" in type(limited).model_fields:
            limited = limited.model_copy(update={"wall_s": min(request.wall_s, RETRY_FACTOR * limited.wall_s)})
            training = again_after_teardown_abort(lambda: codebase.train(workspace, limited, label="synth"))
        if not training.stages:  # no stage's logs or telemetry to show a symptom with: not a bug to keep
            return {**row, "outcome": "setup_failed", "seconds": round(time.time() - started, 1),
                    "detail": f"its training failed before its first stage: {training.message}"[:300]}, None
        run = training_data(training)
        incident = classify(run, base)
        _, origin = traceback_origin(run.stderr, workspace)
    finally:
        shutil.rmtree(workspace.parent, ignore_errors=True)
    seconds = round(time.time() - started, 1)
    found = symptoms_of(incident.classes)
    departed = departure_point(run, base)
    if not found:
        outcome = "no_symptom" if departed or incident.classes != ["no_visible_effect"] else "equivalent"
        return {**row, "outcome": outcome, "classes": incident.classes, "seconds": seconds}, None
    level, evidence = difficulty(found, origin, mutant, is_default)
    bug = from_mutant(mutant, codebase.name, source,
                      # a hang is shown with the limit that measured it; any other bug with the request's own
                      request=(limited if "timed_out" in found else request).model_dump(),
                      commands=list(codebase.commands(request)), symptoms=found, summary=incident.summary,
                      departs_at=departed[0][1] if departed else None,
                      steps=max((s for s, _ in run.loss_series()), default=0), difficulty=level, evidence=evidence)
    return {**row, "outcome": "kept", "classes": found, "seconds": seconds, "training": training.id}, bug
