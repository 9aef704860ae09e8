"""`bugdrill train --codebase CHECKOUT [--bug B]`: any checkout a codebase recognises, trained
offline through its codebase (sandbox/codebases), against its pristine baseline.

The checkout's text files are copied once per call (it is never written to); its pristine run
is the cached baseline; with --bug a blind workspace gets the bug as the codebase's own edit
(nothing printed names it: `bugdrill reveal --workspace` does) and is trained with the same
request; then the incident summary against the baseline and the views asked for.
"""

import random
import shutil
import sys
import tempfile
from pathlib import Path

from bug_catalog.catalog import get_bug
from bug_catalog.selection import choose
from sandbox import codebases
from sandbox.codebase import text_copy
from sandbox.codebases import CodebaseError
from sandbox.symptoms import classify
from sandbox.training import training_data
from sandbox.views import render
from sandbox.workspace import WorkspaceError, create_workspace
from server.progress_display import RunProgress
from server.runs import stage_progress


def report(name, training):
    print(f"{name}: run {training.id} {training.state} in {training.wall_s:.1f} s ({training.message})")


def the_request(codebase, steps, device_type, threads):
    """The codebase's plain request with the command line's steps (None: its own), device and threads."""
    request = codebase.request(codebase.default_request({"bugs": []}), steps=steps)
    update = {"threads": threads} if threads else {}
    if device_type:
        if "device_type" not in type(request).model_fields:
            raise CodebaseError(f"--device-type: {codebase.name} runs choose no device")
        update["device_type"] = device_type
    return request.model_copy(update=update)


def pick(codebase, source, bug, variant, seed):
    """The (record, variant) to inject: "random" draws among the variants that apply here."""
    if bug != "random":
        return codebases.applicable_pick(codebase, source, *choose(bug, variant, seed), variant is None, seed)
    rows = [row for row in codebase.applicability(source) if row["applies"]]
    if not rows:
        raise CodebaseError(f"no catalogue bug applies to this {codebase.name} checkout")
    row = random.Random(seed).choice(rows)
    record = get_bug(row["bug"])
    return record, next(v for v in record.variants if v.name == row["variant"])


def train_checkout(checkout, steps, bug=None, variant=None, seed=None, device_type="", workspace=None,
                   views=("log", "grad_norms"), threads=None):
    codebase = codebases.recognise(Path(checkout))
    if codebase is None:
        raise WorkspaceError(f"{checkout} is not a recognised checkout ({codebases.looked_for()})")
    scratch = Path(tempfile.mkdtemp(prefix="bugdrill-train-"))
    try:
        return train_copy(codebase, checkout, scratch, steps, bug, variant, seed, device_type, workspace, views,
                          threads)
    finally:  # the copy it trained from; a bugged workspace made there stays for `bugdrill reveal`
        shutil.rmtree(scratch / codebase.workspace_name(checkout), ignore_errors=True)
        if not any(scratch.iterdir()):
            scratch.rmdir()


def train_copy(codebase, checkout, scratch, steps, bug, variant, seed, device_type, workspace, views, threads):
    source = scratch / codebase.workspace_name(checkout)
    skipped = text_copy(checkout, source)
    if skipped:
        print(f"left out of the copy (not text): {', '.join(skipped)}", file=sys.stderr)
    try:
        request = the_request(codebase, steps, device_type, threads)
        if bug is not None:
            record, chosen = pick(codebase, source, bug, variant, seed)
            chosen = codebase.injected(record, chosen)
    except CodebaseError as error:
        raise WorkspaceError(f"{error} (bugdrill doctor --codebase {checkout} lists what applies)") from None
    with RunProgress(sys.stderr) as display:
        pristine = codebase.baseline(source, request, on_progress=stage_progress(display.update)("baseline (pristine code)"))
    report("baseline", pristine)
    base_data = training_data(pristine) if pristine.stages else None
    if bug is None:
        run, data, base_data = pristine, base_data, None
    else:
        workspace = Path(workspace) if workspace else scratch / "workspace" / source.name
        key = create_workspace(workspace, source, [(record, chosen)], codebase.name, seed, codebase_kind=codebase.name)
        print(f"workspace: {key['workspace']}")
        with RunProgress(sys.stderr) as display:
            run = codebase.train(workspace, request, label="training",
                                 on_progress=stage_progress(display.update)("training"))
        report("training", run)
        data = training_data(run) if run.stages else None
    if data is None:
        return 1
    print("\nincident: " + classify(data, base_data).summary)
    for name in views:
        print(f"\n--- {name} ---\n" + render(name, data, base_data).text)
    return 0 if run.state == "finished" or bug is not None else 1
