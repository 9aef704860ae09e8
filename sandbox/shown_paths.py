"""Paths in what a candidate is shown, as the candidate knows them.

A run's stderr, its printed output and the messages made from them name places the way the
process saw them: the workspace at its host path, or at /episode/workspace inside the jail
(sandbox/jail.py); the directories a run writes at their host paths in the state directory,
or at /episode/rw/N. The candidate knows the workspace as the root its paths are relative to,
and a run's data directory as the environment variable the code reads ($PICOCHAT_BASE_DIR);
the state directory is not theirs to know at all. `for_candidate` rewrites a text accordingly,
and is applied wherever a candidate's result is made from a process's output.
"""

import json
import re
from pathlib import Path

from sandbox import jail, runner
from sandbox.state import state_dir

STATE = "<bugdrill's state directory>"
PROBE = "<bugdrill's probe>"
# a jail's place no run names (a check's scratch directory, the check framework): said for what it is
JAIL_LEFT = ((re.compile(re.escape(jail.ROOT) + r"/rw/\d+"), "<a scratch directory>"),
             (re.compile(re.escape(jail.ROOT) + r"/(?:ro/\d+|lib)"), "<bugdrill's files>"))
PATH_CHAR = r"[\w.-]"  # what continues a file name: a path next to one of these is part of another path


def forms(path):
    """A path as given and as resolved (a symlink on the way makes them differ)."""
    return {str(path), str(Path(path).resolve())}


def workspace_places(workspace):
    """{path: shown} for the workspace (shown relative: "") and the state directory."""
    places = {form: "" for form in forms(workspace)} if workspace else {}
    places[jail.WORKSPACE] = ""
    places.update({form: STATE for form in forms(state_dir())})
    return places


def run_places(run_dir, spec):
    """{path: shown} for one run of the runner: its workspace, and every directory bound in its
    jail by what the code knows it as (the environment variable that holds it), in host and jail
    form alike."""
    spec = runner.RunSpec(workspace=spec["workspace"], argv=[], env=spec.get("env", {}),
                          quota_dirs=spec.get("quota_dirs", []), probe=spec.get("probe", True))
    places = workspace_places(spec.workspace)
    named = {str(Path(value).resolve()): f"${name}" for name, value in spec.env.items() if value.startswith("/")}
    named[str((Path(run_dir) / "telemetry").resolve())] = "$BUGDRILL_PROBE_DIR"
    named[str(runner.PROBE_DIR.resolve())] = PROBE
    for host, inside in runner.jail_plan(spec, spec.workspace, run_dir).places().items():
        if host in named:
            places.update({host: named[host], inside: named[host]})
    return places


def training_places(training):
    """{path: shown} for every stage of a training (sandbox/training.py); a stage whose files are
    gone leaves its workspace and the state directory still hidden."""
    places = workspace_places(training.workspace)
    for run_id in training.stages:
        try:
            path = runner.run_dir(run_id)
            places.update(run_places(path, json.loads((path / "spec.json").read_text())))
        except (runner.RunError, OSError, ValueError):
            continue
    return places


def for_candidate(text, places):
    """`text` with every path of `places` rewritten: a place's name, or for the workspace ("")
    the path relative to it ("." for the workspace itself); then any place of a jail no run
    named (JAIL_LEFT). Longer paths first, so a workspace inside the state directory is shown as
    the workspace."""
    for path in sorted(places, key=len, reverse=True):
        shown, start = places[path], rf"(?<!{PATH_CHAR})" + re.escape(path)
        if shown:
            text = re.sub(start + rf"(?!{PATH_CHAR})", lambda _: shown, text)
        else:
            text = re.sub(start + "/", "", text)
            text = re.sub(start + r"(?![\w./-])", ".", text)
    for pattern, shown in JAIL_LEFT:
        text = pattern.sub(shown, text)
    return text
