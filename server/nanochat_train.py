"""`bugdrill train --codebase NANOCHAT_CHECKOUT [--bug B]`: the real nanochat trained offline.

The checkout's text files are copied once per call (it is never written to); its pristine run
is the cached baseline; with --bug a blind workspace gets the bug (nothing printed names it:
`bugdrill reveal --workspace` does) and is trained with the same request; then the incident
summary against the baseline and the views asked for.
"""

import random
import sys
import tempfile
from pathlib import Path

from bug_catalog.catalog import get_bug
from bug_catalog.selection import choose
from bug_catalog.targets.nanochat import applicability, edit_for, variant_for
from sandbox.nanochat import NanochatRequest, baseline, text_copy, train
from sandbox.symptoms import classify
from sandbox.training import training_data
from sandbox.views import render
from sandbox.workspace import WorkspaceError, create_workspace


def progress(label):
    """A line on stderr every 5 s of a run, and when it ends."""
    shown = set()

    def show(stage, stages, result):
        moment = result.state if result.state != "running" else int(result.wall_s) // 5
        if moment not in shown:
            shown.add(moment)
            print(f"{label}: {result.message}", file=sys.stderr, flush=True)
    return show


def choose_applicable(source, bug, variant, seed):
    """choose(), but "random" draws only among the variants that apply to this checkout."""
    if bug != "random":
        return choose(bug, variant, seed)
    rows = [row for row in applicability(source) if row["applies"]]
    row = random.Random(seed).choice(rows)
    record = get_bug(row["bug"])
    return record, next(v for v in record.variants if v.name == row["variant"])


def report(name, training):
    print(f"{name}: run {training.id} {training.state} in {training.wall_s:.1f} s ({training.message})")


def train_nanochat(codebase, steps, bug=None, variant=None, seed=None, device_type="", workspace=None,
                   views=("log", "grad_norms")):
    scratch = Path(tempfile.mkdtemp(prefix="bugdrill-nanochat-"))
    source = scratch / "nanochat"
    skipped = text_copy(codebase, source)
    if skipped:
        print(f"left out of the copy (not text): {', '.join(skipped)}", file=sys.stderr)
    if bug is not None:
        record, chosen = choose_applicable(source, bug, variant, seed)
        if edit_for(record, chosen) is None:
            raise WorkspaceError(f"bug {record.id} variant {chosen.name} does not apply to nanochat "
                                 f"(see bugdrill doctor --codebase {codebase})")
    request = NanochatRequest(steps=steps, device_type=device_type)
    pristine = baseline(source, request, on_progress=progress("baseline (pristine nanochat)"))
    report("baseline", pristine)
    base_data = training_data(pristine) if pristine.stages else None
    if bug is None:
        run, data, base_data = pristine, base_data, None
    else:
        workspace = Path(workspace) if workspace else scratch / "workspace" / "nanochat"
        key = create_workspace(workspace, source, [(record, variant_for(record, chosen))], "nanochat", seed)
        print(f"workspace: {key['workspace']}")
        run = train(workspace, request, label="nanochat", on_progress=progress("training"))
        report("training", run)
        data = training_data(run) if run.stages else None
    if data is None:
        return 1
    print("\nincident: " + classify(data, base_data).summary)
    for name in views:
        print(f"\n--- {name} ---\n" + render(name, data, base_data).text)
    return 0 if run.state == "finished" or bug is not None else 1
