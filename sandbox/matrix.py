"""The validation matrix: inject each bug variant, run the shortest run that shows it, classify
the symptom against the pristine baseline, and compare with what the catalogue recorded.

A row passes when every class the record lists for the variant (`shows`) was observed. A
variant that lists none is not expected to show in a run here: the record's run_note (or, for
code-review bugs, its symptom) says why, and the row reports it as such, never as a pass of
something that was not measured.
"""

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from bug_catalog.catalog import load_catalog
from bug_catalog.split import held_out_names
from sandbox.baselines import baseline
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.sentences import first_sentence
from sandbox.symptoms import classify
from sandbox.teardown_retry import again_after_teardown_abort
from sandbox.training import TrainingRequest, train, training_data
from sandbox.workspace import create_workspace


class MatrixRow(BaseModel):
    bug: int
    slug: str
    variant: str
    scenario: str
    steps: int | None
    expected: list[str]
    observed: list[str]
    verdict: str  # "shows" | "missing" | "not run: <why>"
    steps_run: int
    seconds: float  # inject to classified symptom, baseline excluded (it is cached)
    summary: str
    training: str = ""  # the bugged training's id, to look at its views


def request_for(record, variant):
    """The run the catalogue measured for a variant (its scenario, plus the record's steps and flags):
    the one the matrix checks."""
    return TrainingRequest(scenario=variant.scenario or record.scenario, steps=record.run_steps,
                           args=[*record.run_args, *variant.run_args])


def scenario_request(record, variant):
    """The run an interview opens with: the variant's scenario with that scenario's own steps and
    flags. Several bugs share each scenario, so the request the candidate sees does not name the
    bug the way a per-bug recipe of steps and flags did."""
    return TrainingRequest(scenario=variant.scenario or record.scenario)


def not_run_reason(record, variant):
    if record.observable == "code_review":
        return "code review only: " + first_sentence(record.symptom)
    if not variant.shows:
        return "no run symptom here: " + first_sentence(record.run_note or record.symptom)
    return None


def run_variant(record, variant, scratch):
    request = request_for(record, variant)
    base = training_data(baseline(PICOCHAT_DIR, request))
    started = time.time()
    workspace = Path(tempfile.mkdtemp(dir=scratch)) / "picochat"
    create_workspace(workspace, PICOCHAT_DIR, [(record, variant)])
    training = again_after_teardown_abort(lambda: train(workspace, request, label=f"matrix {record.id}"))
    run = training_data(training)
    incident = classify(run, base)
    seconds = time.time() - started
    missing = [c for c in variant.shows if c not in incident.classes]
    steps_run = max((s for s, _ in run.loss_series()), default=0)
    return MatrixRow(bug=record.id, slug=record.slug, variant=variant.name, scenario=request.scenario,
                     steps=request.steps, expected=list(variant.shows), observed=incident.classes,
                     verdict="missing" if missing else "shows", steps_run=steps_run, seconds=round(seconds, 1),
                     summary=incident.summary, training=training.id)


def skipped(record, variant, reason):
    return MatrixRow(bug=record.id, slug=record.slug, variant=variant.name, scenario=record.scenario,
                     steps=record.run_steps, expected=[], observed=[], verdict=f"not run: {reason}", steps_run=0,
                     seconds=0.0, summary="")


def validate(bug_ids=None, jobs=2, measure_all=False, on_row=None):
    """Rows for every variant of the chosen bugs. measure_all: also run the variants that are not
    expected to show anything, to record what they do."""
    records = [r for r in sorted(load_catalog().values(), key=lambda r: r.id) if not bug_ids or r.id in bug_ids]
    scratch = tempfile.mkdtemp(prefix="bugdrill-matrix-")
    work = []
    for record in records:
        for variant in record.variants:
            reason = not_run_reason(record, variant)
            work.append((record, variant, None if measure_all else reason))
    # warm each distinct baseline once, so parallel rows do not queue on the same lock
    requests = [request_for(r, v) for r, v, reason in work if not reason]
    for request in {r.model_dump_json(): r for r in requests}.values():
        baseline(PICOCHAT_DIR, request)

    def one(item):
        record, variant, reason = item
        row = skipped(record, variant, reason) if reason else run_variant(record, variant, scratch)
        if on_row:
            on_row(row)
        return row

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, work))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def table(rows, publish=False):
    """The matrix as a markdown table. publish: for the docs, where held-out variants (those
    evals draw, bug_catalog/split.py) appear by their measurements only, never by name or note."""
    catalog = load_catalog()
    lines = ["| bug | variant | scenario | expected | observed | verdict | steps | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        variant, verdict = r.variant, r.verdict
        if publish and r.variant in held_out_names(catalog[r.bug]):
            variant, verdict = "(held out)", verdict.split(":")[0]
        lines.append(f"| {r.bug} {r.slug} | {variant} | {r.scenario} | {', '.join(r.expected) or '-'} | "
                     f"{', '.join(r.observed) or '-'} | {verdict} | {r.steps_run or '-'} | {r.seconds or '-'} |")
    return "\n".join(lines)
