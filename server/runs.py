"""Training runs of an interview, with no MCP in it: run, classify against baseline, view.

The run an interview opens with is the codebase's default request for its answer key (on the
built-in codebase: its bug's scenario with the scenario's own steps and flags, shared by several
bugs, so the request does not name the bug); the candidate may change the scenario, steps, flags
and seed where the codebase allows. How a codebase trains is its own (sandbox/codebases): this
module asks the answer key's codebase object. Every run is recorded as a `run` event of its
interview, and a run can only be viewed through the interview that made it. One run at a time
per interview: a second one is refused, not queued.
"""

import fcntl
import json
import re
import shlex
from contextlib import contextmanager

from bug_synth.synth_bug import fix_requests, opening_request
from sandbox import baselines, codebases
from sandbox.codebases import CodebaseError
from sandbox.matching import Match, runs_match
from sandbox.rundata import script_of
from sandbox.runner import RunError, read_log, run_dir, run_result, stop_run
from sandbox.symptoms import classify
from sandbox.teardown_retry import again_after_teardown_abort
from sandbox.training import load_training, new_id, training_data
from sandbox.workspace import is_pristine_copy
from sandbox.views import BANDED, ViewError, render
from server.interviews import PRISTINE_COPY, InterviewError, StageResult
from server.progress_notes import stage_units


def codebase_of(key):
    """The pristine directory an answer key's workspace was copied from."""
    return codebases.source_of(key)


class Runs:
    def __init__(self, interviews):
        self.interviews = interviews

    @contextmanager
    def exclusive(self, interview_id):
        """Refuse a second run on an interview while one is going (in this or another server)."""
        with self._run_lock(interview_id) as taken:
            if not taken:
                raise InterviewError(f"a training run is already in progress on interview {interview_id}; "
                                     "wait for it to finish (list_runs shows it)")
            yield

    @contextmanager
    def _run_lock(self, interview_id):
        """The interview's run lock, taken without waiting for the block's length: yields whether it was
        free (a flock, so a run in another server process holds it too)."""
        with open(self.interviews.locks_dir / f"{interview_id}.run.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def request(self, interview, scenario=None, steps=None, args=None, seed=None):
        """The interview's default request with the candidate's changes, checked by the codebase
        (the baseline runs the same request, so one check covers both sides: flags, paths, step cap)."""
        key = self.interviews.key(interview)
        codebase = codebases.of_key(key)
        try:
            return codebase.request(opening_request(codebase, key), scenario, steps, args, seed)
        except CodebaseError as error:
            raise InterviewError(str(error)) from None

    def run(self, interview_id, scenario=None, steps=None, args=None, seed=None, report=None):
        """(training, incident, commands) of a new run of the interview's workspace. The run is
        recorded before it starts, so a server stopped mid-run leaves it listed as interrupted."""
        interview = self.interviews.require_open(interview_id)
        key = self.interviews.key(interview)
        codebase = codebases.of_key(key)
        request = self.request(interview, scenario, steps, args, seed)
        commands = codebase.commands(request)
        with self.exclusive(interview_id):
            progress = stage_progress(report)
            phase = planned_units(commands)
            if report:
                report.plan(2 * phase)  # the baseline, then the run: a cached baseline is skipped below
            try:
                base = codebase.baseline(codebase_of(key), request, on_progress=progress("baseline (pristine code)"))
            except baselines.BaselineFailed as error:
                raise InterviewError(f"{error}. Your code was not run. If your flags made the pristine code fail, "
                                     "change them") from None
            if report:
                report.reach(phase, "baseline (pristine code): ready")
            training_id = new_id()
            started = {"training": training_id, "baseline": base.id,
                       "request": {"scenario": "base", **request.model_dump()}}
            self.interviews.record(interview_id, "run", {**started, "state": "running", "classes": [],
                                                         "summary": "still running"})
            training = codebase.train(interview.workspace, request, on_progress=progress("training"),
                                     training_id=training_id)
            if not training.stages:  # failed before the script started (making its data, say)
                self.interviews.record(interview_id, "run", {**started, "state": training.state, "classes": [],
                                                             "summary": training.message})
                raise InterviewError(f"the run {training_id} failed before training started: {training.message}")
            incident = classify(training_data(training), training_data(base))
            self.interviews.record(interview_id, "run", {**started, "state": training.state,
                                                         "classes": incident.classes, "summary": incident.summary})
        return training, incident, commands

    def owned(self, interview_id, run_id):
        """The interview's run `run_id` (and its request's baseline), or a clear error."""
        interview = self.interviews.get(interview_id)
        match = next((p for p in self.list(interview_id) if p.get("training") == run_id), None)
        if match is None:
            raise InterviewError(f"interview {interview_id} has no run {run_id!r}; list_runs shows its runs")
        try:
            return interview, load_training(run_id), load_training(match["baseline"])
        except RunError as error:
            raise InterviewError(f"the files of run {run_id} are gone: {error}") from None

    def list(self, interview_id):
        """The interview's runs, the latest record of each; a run still marked running while no
        server holds the interview's run lock was cut short by a server that stopped."""
        self.interviews.get(interview_id)
        latest = {}
        for event in self.interviews.store.events(interview_id, "run"):
            latest[event["payload"]["training"]] = event["payload"]
        runs = list(latest.values())
        if any(p["state"] == "running" for p in runs) and not self.running(interview_id):
            runs = [self.interrupted(p) if p["state"] == "running" else p for p in runs]
        return runs

    @staticmethod
    def interrupted(payload):
        """A run whose server stopped: stop what is left of it, and say so."""
        try:
            for run_id in load_training(payload["training"]).stages:
                if run_result(run_id).state == "running":
                    stop_run(run_id)
        except RunError:
            pass  # nothing of it was started
        return {**payload, "state": "interrupted",
                "summary": "The server stopped during this run, so it did not finish. Run again."}

    def running(self, interview_id):
        with self._run_lock(interview_id) as taken:
            return not taken

    def view(self, interview_id, run_id, name, every=None, image=False, tail=None, grep=None):
        interview, training, base = self.owned(interview_id, run_id)
        band = ()
        if image and name in BANDED:  # pristine runs with other seeds: run once per request, then cached
            key = self.interviews.key(interview)
            band = [training_data(t) for t in codebases.of_key(key).band(codebase_of(key), training.request) or ()]
        try:
            view = render(name, training_data(training), training_data(base), every=every, image=image, band=band,
                          tail=tail, grep=grep)
        except ViewError as error:
            raise InterviewError(str(error)) from None
        self.interviews.record(interview_id, "view", {"run": run_id, "view": name, "image": image})
        return view


def stage_progress(report):
    """on_progress callbacks for train(): `report(step, planned steps, message)` of the stage
    running, its message naming the phase, the stage and its script where there are several
    ("baseline (pristine code), stage 2 of 2 (scripts/base_eval.py): step 40 of 100"). Before
    the stage's first logged step the planned steps come from its command line, if it says."""
    def for_phase(phase):
        if report is None:
            return None

        seen = {}  # run id -> the last (step, total) its log showed: the step line scrolls out of the tail

        def on_progress(index, count, result):
            step, total = last_logged_step(result.run_id)
            if total is None:
                step, total = seen.get(result.run_id, (0, None))
            seen[result.run_id] = step, total
            spec = run_spec(result.run_id)
            total = total or planned_steps(spec.get("argv", []))
            where = f"{phase}, stage {index + 1} of {count} ({script_of(spec)})" if count > 1 else phase
            if total is None:
                report(0, None, f"{where}: running (its output gives no step count)")
            else:
                report(step, total, f"{where}: step {step} of {total}" if step else
                       f"{where}: starting, {total} steps planned")
        return on_progress
    return for_phase


def run_spec(run_id):
    try:
        return json.loads((run_dir(run_id) / "spec.json").read_text())
    except (RunError, OSError, ValueError):
        return {}


def planned_units(commands):
    """The progress units of one phase (a baseline, or a run) of these command lines: each stage
    spans its planned steps and its start."""
    return sum(stage_units(planned_steps(shlex.split(command))) for command in commands)


def planned_steps(argv):
    """The steps a command line asks for (its last --num_iterations, or nanochat's --num-iterations)."""
    found = [int(m.group(1)) for a in argv for m in [re.fullmatch(r"--num[_-]iterations=(\d+)", a)] if m]
    return found[-1] if found else None


def last_logged_step(run_id):
    from sandbox.logparse import TRAIN_HEAD

    for line in reversed(read_log(run_id, "stdout", tail_lines=20).splitlines()):
        match = TRAIN_HEAD.match(line.strip())
        if match:
            return int(match.group(1)), int(match.group(2))
    return 0, None


def behaviour_requests(key):
    """The runs a fix is judged by: the codebase's short runs for the answer key (sandbox/codebases)."""
    return fix_requests(codebases.of_key(key), key)


def short_run_stage(interview, key, report=None):
    """A verification stage: the workspace's runs (behaviour_requests) must match the same-seed
    pristine runs (sandbox/matching.py). Code that passes a check and trains differently on the
    path that showed the bug is not fixed; nor is code that only behaves when it spots a check."""
    if is_pristine_copy(interview.workspace, codebase_of(key)):
        return [StageResult("runs against the pristine code", True, PRISTINE_COPY)]
    if report:
        report(0, 1, "short training runs against the pristine code: running")
    same, detail = trains_like_pristine(key, interview.workspace, label="verify")
    if not same:
        return [StageResult("runs against the pristine code", False, detail)]
    return [StageResult("runs against the pristine code", True, "trains like the pristine code")]


def trains_like_pristine(key, workspace, label):
    """(True, "") when each run that judges a fix (behaviour_requests) trains in `workspace` as the
    same-seed pristine run does; else (False, where it differs, or why there is no verdict)."""
    codebase = codebases.of_key(key)
    for request in behaviour_requests(key):
        try:
            base = codebase.baseline(codebase_of(key), request)
        except RunError as error:  # a pristine run that fails: no verdict
            return False, str(error)
        # a rank lost in gloo's teardown says nothing of the fix: that run is made again
        training = again_after_teardown_abort(lambda: codebase.train(workspace, request, label=label))
        try:
            match = runs_match(training_data(training), training_data(base))
        except RunError as error:
            match = Match(False, f"the run left nothing to compare: {error}")
        if not match.same:
            return False, match.detail
    return True, ""
