"""Catalogue applicability measured on a checkout, not assumed (issue 17).

A codebase's static table (`Codebase.applicability`) says a variant applies when its edit finds
its construct in the checkout's text. That is not enough: on an edited checkout the edit may
change only layout (a statement split in two makes "remove the keys' norm" a comment change), the
variant's behavioural check may no longer fit the checkout's API (a renamed config field fails it
on the pristine code, so a fix could never be verified), and the edit may sit on a path the
default run never takes (or that the device's kernels bypass), so production debugging would show
nothing. `measure` finds out, per variant, on this very checkout and device:

  a. static: the bugged text differs from the pristine in more than layout and comments;
  b. the check fits: it passes on a pristine copy and fails on the bugged copy (both jailed,
     bug_catalog.checking.run_checks);
  c. (production debugging only) the codebase's default run of the bugged copy, classified against
     the cached pristine baseline (sandbox/symptoms.py), shows a symptom; else the variant is
     offered for code review only.

Results are cached in the state directory per codebase, checkout digest and device, keyed by the
variant's edit name; a pristine check's result is cached once for every variant that shares it.
The built-in codebase is not measured here: its validation matrix (`bugdrill validate`) is its
measurement (`measured_here`).
"""

import ast
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from sandbox.baselines import codebase_digest, locked, machine_signature
from sandbox.codebase import copy_codebase
from sandbox.state import state_dir
from sandbox.workspace import WorkspaceError, apply_variants, read_codebase

CHECK_TIMEOUT_S = 600
TIMED_OUT = "the checks took longer than"  # bug_catalog/checking.py's detail for a check it stopped
# classes that are no symptom by themselves (the same rule as bug_synth/measure.py)
NOT_SYMPTOMS = {"no_visible_effect", "departs_from_baseline"}
ALONE_IS_NOISE = {"throughput_drop"}  # a loaded machine shows it by itself
LAYOUT_ONLY = "the edit changes only layout on this checkout"
CHECK_MOVED = "its check fails on the pristine checkout (the code moved away from what the check calls)"
CHECK_BLIND = "the edit changes nothing the check measures on this checkout"
CODE_REVIEW_ONLY = "offered for code review only"


class MeasureError(RuntimeError):
    """The measurement could not be made (its baseline failed): nothing was cached."""


def measured_here(codebase):
    """Whether draws on this codebase are measured here: every codebase but the built-in one,
    whose validation matrix is its measurement."""
    return codebase.source is None


# ----------------------------------------------------------------------------- the cache


def cache_path(codebase, source):
    device = machine_signature()["device"]
    return state_dir() / "applicability" / f"{codebase.name}-{codebase_digest(source)}-{device}.json"


def _read(path):
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"rows": {}, "pristine_checks": {}}
    return {"rows": stored.get("rows", {}), "pristine_checks": stored.get("pristine_checks", {})}


@contextmanager
def _updating(path):
    """The cache, read under its lock and written back (whole, then renamed) when the block ends."""
    with locked(path.with_suffix(".lock")):
        cache = _read(path)
        yield cache
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(cache, indent=1, sort_keys=True))
        partial.replace(path)


def cached_rows(codebase, source):
    """{edit name: measured row} already in the cache for this checkout and device (nothing is run)."""
    return _read(cache_path(codebase, source))["rows"]


# ----------------------------------------------------------------------------- a: static


def layout_only(before, after):
    """Whether two Python texts differ in layout and comments only (the same syntax tree)."""
    try:
        return ast.dump(ast.parse(before)) == ast.dump(ast.parse(after))
    except (SyntaxError, ValueError):  # a text that does not parse is not the same program
        return False


# ----------------------------------------------------------------------------- b: the check fits


def _copy(source, directory, name, edited=None):
    """A copy of the checkout under directory/name, with `edited` ({file: text}) written over it."""
    workspace = copy_codebase(source, Path(directory) / name)
    for relative, text in (edited or {}).items():
        (workspace / relative).write_text(text)
    return workspace


def _run_check(workspace, check):
    from bug_catalog.checking import run_checks

    started = time.time()
    result = run_checks(workspace, [check], timeout=CHECK_TIMEOUT_S)[check]
    return {**result, "seconds": round(time.time() - started, 1)}


def _last_line(detail):
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no detail"


# ----------------------------------------------------------------------------- c: the default run


def _run_verdict(codebase, source, workspace):
    """{production_debugging, reason, symptom, steps, classes} of the default run of `workspace`
    against the pristine baseline of the same request."""
    from sandbox.runner import RunError
    from sandbox.symptoms import aggregate_curves, classify, departure_point, last_step
    from sandbox.training import training_data

    request = codebase.default_request({"bugs": []})
    try:
        base = training_data(codebase.baseline(source, request))
    except RunError as error:
        raise MeasureError(str(error)) from None
    training = codebase.train(workspace, request, label="applicability")
    if not training.stages:  # it failed before training (e.g. the codebase's data preparation): a crash to see
        return {"production_debugging": True, "reason": "", "classes": ["crashed"], "steps": 0,
                "symptom": f"The run failed before its first step: {training.message}"}
    run = training_data(training)
    incident = classify(run, base)
    steps = last_step(run)
    found = [c for c in incident.classes if c not in NOT_SYMPTOMS]
    measured = {"symptom": incident.summary, "steps": steps}
    if found and not set(found) <= ALONE_IS_NOISE:
        return {**measured, "production_debugging": True, "reason": "", "classes": found}
    departed = departure_point(run, base)
    if aggregate_curves(run) == aggregate_curves(base):
        said = "is identical to the baseline's"
    elif departed is None:
        said = "matches the baseline's within 0.1% at every step"
    else:
        said = f"departs from the baseline's at step {departed[0][1]} but shows no symptom"
    return {**measured, "production_debugging": False, "classes": incident.classes,
            "reason": f"{CODE_REVIEW_ONLY}: the default run ({steps} steps) {said}"}


# ----------------------------------------------------------------------------- measuring one variant


def measure(codebase, source, record, variant, run=True):
    """The measured row of a catalogue variant on this checkout: {"bug", "slug", "variant", "edit",
    "applies", "production_debugging", "ran", "reason", "symptom", "steps", "classes", "seconds",
    "device", "cached"}. `ran`: whether step c was made (asked for with `run`); a cached row that
    has what is asked for is returned as it is, with "cached": True, and a cached row that applies
    but was not run gets only its run. Raises MeasureError when the baseline cannot be run, and
    the codebase's CodebaseError for a variant it has no edit of."""
    edit = codebase.injected(record, variant)
    path = cache_path(codebase, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.with_name(f"{path.stem}.{edit.edit.replace('/', '_')}.lock")):  # one measures, the others wait
        known = _read(path)["rows"].get(edit.edit)
        if known is not None and (known["ran"] or not run or not known["applies"]):
            return {**known, "cached": True}
        started = time.time()
        row = _measure(codebase, source, record, edit, run, path, known)
        row["seconds"] = round(time.time() - started, 1)
        with _updating(path) as cache:
            cache["rows"][edit.edit] = row
    return {**row, "cached": False}


def _measure(codebase, source, record, edit, run, path, known):
    """Steps a, b and (with `run`) c; a `known` row that applies skips to c."""
    row = {"bug": record.id, "slug": record.slug, "variant": edit.name, "edit": edit.edit, "applies": False,
           "production_debugging": False, "ran": False, "reason": "", "symptom": "", "steps": None, "classes": [],
           "device": machine_signature()["device"]}
    files = read_codebase(source)
    try:
        (injected,) = apply_variants(files, [(record, edit)])
    except WorkspaceError as error:
        return {**row, "reason": str(error)}
    bugged = {injected.file: files[injected.file]}
    if layout_only(injected.pristine, bugged[injected.file]):
        return {**row, "reason": LAYOUT_ONLY}
    scratch = Path(tempfile.mkdtemp(prefix="bugdrill-applicability-"))
    name = codebase.workspace_name(source)
    try:
        if known is None or not known["applies"]:
            why_not = _check_misfit(codebase.check_for(record), source, scratch, name, bugged, path)
            if why_not:
                return {**row, "reason": why_not}
        row["applies"] = True
        if not run:
            return row
        return {**row, "ran": True, **_run_verdict(codebase, source, _copy(source, scratch / "run", name, bugged))}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_misfit(check, source, scratch, name, bugged, path):
    """Why the variant's check does not tell the bugged copy from the pristine one, or ""."""
    pristine = _read(path)["pristine_checks"].get(check)
    if pristine is None:
        pristine = _run_check(_copy(source, scratch / "pristine", name), check)
        if pristine["detail"].startswith(TIMED_OUT):  # a busy machine's verdict, not the checkout's: not cached
            raise MeasureError(f"its check on the pristine copy: {pristine['detail']}")
        with _updating(path) as cache:
            cache["pristine_checks"][check] = pristine
    if not pristine["passed"]:
        return f"{CHECK_MOVED}: {_last_line(pristine['detail'])}"
    if _run_check(_copy(source, scratch / "bugged", name, bugged), check)["passed"]:
        return CHECK_BLIND
    return ""


def offered(row, run):
    """Whether a measured row lets the variant be drawn: it applies, and for production debugging
    (`run`) its default run shows a symptom."""
    return row["applies"] and (not run or row["production_debugging"])


def verdict(row):
    """A measured row in a few words, for tables."""
    if not row["applies"]:
        return "does not apply"
    if not row["ran"]:
        return "applies (code review; its run not measured)"
    return "applies (production debugging and code review)" if row["production_debugging"] else "code review only"


def measured_symptom(codebase, source, bug_id, variant=None):
    """What the measured default runs of the bug's variants (or of `variant`) showed on this
    checkout and device, with their steps; "" when the cache has none."""
    rows = [row for row in cached_rows(codebase, source).values()
            if row["bug"] == bug_id and row["ran"] and variant in (None, row["variant"])]
    return " ".join(f"Measured on this checkout ({row['device']}), variant {row['variant']}: "
                    + (f"its default run ({row['steps']} steps run) showed: {row['symptom']}" if row["production_debugging"]
                       else f"{row['reason']}.")
                    for row in sorted(rows, key=lambda row: row["variant"]))
