"""Training runs of an interview, with no MCP in it: run, classify against baseline, view.

The run an interview opens with is its bug's scenario with the scenario's own steps and flags
(shared by several bugs, so the request does not name the bug); the candidate may run any
scenario with their own flags. On a nanochat checkout every run
is nanochat's own scripts/base_train.py (sandbox/nanochat.py), with the candidate's steps and
flags, against the pristine checkout's run: `trainer_of` is where the two part. Every run is recorded as a
`run` event of its interview, and a run can only be viewed through the interview that made it.
One run at a time per interview: a second one is refused, not queued.
"""

import fcntl
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from bug_catalog.catalog import load_catalog
from sandbox import baselines, nanochat
from sandbox.codebase import PICOCHAT_DIR
from sandbox.matrix import request_for, scenario_request
from sandbox.matching import Match, runs_match
from sandbox.runner import RunError, read_log, run_result, stop_run
from sandbox.scenarios import ScenarioError, get_scenario
from sandbox.symptoms import classify
from sandbox.training import (
    TrainingRequest, describe_request, load_training, new_id, request_commands, train, training_data,
)
from sandbox.views import BANDED, ViewError, render
from server.interviews import InterviewError, StageResult

# what a fix must not do to a short pristine-sized run: the same for every bug (no oracle)
SANITY_REQUEST = TrainingRequest(scenario="base", steps=30, args=["--num_samples=0", "--eval_every=15"])


@dataclass(frozen=True)
class Trainer:
    """How an answer key's codebase trains: the request types, the run, its cached baseline and
    (for plots) pristine runs with other seeds."""
    default: Callable  # key -> the request an interview's runs start from
    train: Callable  # (workspace, request, on_progress=, training_id=, label=) -> Training
    baseline: Callable  # (codebase, request, on_progress=) -> Training
    band: Callable | None  # (codebase, request) -> [Training]; None: no seed to vary
    describe: Callable  # request -> commands
    sanity: object  # the short run a fix must not break: the same for every bug (no oracle)


def trainer_of(key):
    return NANOCHAT if key.get("codebase") == "nanochat" else SCENARIOS


def default_request(key):
    """The (first) injected bug's scenario, with the scenario's own steps and flags; a plain base run
    with no bug."""
    if not key["bugs"]:
        return TrainingRequest()
    record = load_catalog()[key["bugs"][0]["id"]]
    variant = next(v for v in record.variants if v.name == key["bugs"][0]["variant"])
    return scenario_request(record, variant)


def codebase_of(key):
    return PICOCHAT_DIR if key.get("codebase", "builtin") == "builtin" else key["codebase_path"]


SCENARIOS = Trainer(default_request, train, baselines.baseline, baselines.band, describe_request, SANITY_REQUEST)
NANOCHAT = Trainer(lambda key: nanochat.NanochatRequest(), nanochat.train, nanochat.baseline, None,
                   lambda request: ["python -m scripts.base_train " + " ".join(request.flags())],
                   nanochat.NanochatRequest(steps=30, eval_every=15))


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
        key = self.interviews.key(interview)
        base = trainer_of(key).default(key)
        if trainer_of(key) is NANOCHAT and (scenario is not None or seed is not None):
            raise InterviewError("this interview's codebase is nanochat: every run is its scripts/base_train.py, "
                                 "with no scenarios and its own seed; pass steps and args (base_train flags, "
                                 "e.g. --matrix-lr=0.01)")
        if scenario is not None and scenario != base.scenario:
            base = TrainingRequest(scenario=scenario)
        update = {k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None}
        if args is not None:
            update["args"] = [*base.args, *args]
        request = base.model_copy(update=update)
        # the baseline runs the same request, so one check covers both sides (flags, paths, step cap)
        try:
            if trainer_of(key) is NANOCHAT:
                nanochat.check_request(request)
            else:
                request_commands(request)
        except ScenarioError as error:
            raise InterviewError(str(error)) from None
        return request

    def run(self, interview_id, scenario=None, steps=None, args=None, seed=None, report=None):
        """(training, incident, commands) of a new run of the interview's workspace. The run is
        recorded before it starts, so a server stopped mid-run leaves it listed as interrupted."""
        interview = self.interviews.require_open(interview_id)
        key = self.interviews.key(interview)
        trainer = trainer_of(key)
        try:
            request = self.request(interview, scenario, steps, args, seed)
            commands = trainer.describe(request)
        except ScenarioError as error:
            raise InterviewError(str(error)) from None
        with self.exclusive(interview_id):
            progress = stage_progress(report)
            try:
                base = trainer.baseline(codebase_of(key), request, on_progress=progress("baseline (pristine code)"))
            except baselines.BaselineFailed as error:
                raise InterviewError(f"{error}. Your code was not run. If your flags made the pristine code fail, "
                                     "change them") from None
            training_id = new_id()
            started = {"training": training_id, "baseline": base.id,
                       "request": {"scenario": "base", **request.model_dump()}}
            self.interviews.record(interview_id, "run", {**started, "state": "running", "classes": [],
                                                         "summary": "still running"})
            training = trainer.train(interview.workspace, request, on_progress=progress("training"),
                                     training_id=training_id)
            if not training.stages:  # failed before the script started (nanochat: its data or tokenizer)
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
            runs = trainer_of(key).band
            band = [training_data(t) for t in runs(codebase_of(key), training.request)] if runs else ()
        try:
            view = render(name, training_data(training), training_data(base), every=every, image=image, band=band,
                          tail=tail, grep=grep)
        except ViewError as error:
            raise InterviewError(str(error)) from None
        self.interviews.record(interview_id, "view", {"run": run_id, "view": name, "image": image})
        return view


def stage_progress(report):
    """on_progress callbacks for train(): the last logged step of the stage running, as progress."""
    def for_phase(phase):
        if report is None:
            return None

        def on_progress(index, count, result):
            step, total = last_logged_step(result.run_id)
            stage = f" (stage {index + 1} of {count})" if count > 1 else ""
            report(step, total, f"{phase}{stage}: step {step} of {total}" if total else f"{phase}{stage}")
        return on_progress
    return for_phase


def last_logged_step(run_id):
    from sandbox.logparse import TRAIN_HEAD

    for line in reversed(read_log(run_id, "stdout", tail_lines=20).splitlines()):
        match = TRAIN_HEAD.match(line.strip())
        if match:
            return int(match.group(1)), int(match.group(2))
    return 0, None


MATCH_STEPS = 60  # the verification's runs: long enough to show most runs' bugs, short enough to repeat


def behaviour_requests(key):
    """The runs a fix is judged by: the plain short run (the same for every interview), and the run
    the catalogue measured for each injected bug, cut to MATCH_STEPS."""
    trainer = trainer_of(key)
    requests = [trainer.sanity]
    if trainer is not SCENARIOS:
        return requests
    catalog = load_catalog()
    for bug in key["bugs"]:
        record = catalog[bug["id"]]
        measured = request_for(record, next(v for v in record.variants if v.name == bug["variant"]))
        steps = min(measured.steps or get_scenario(measured.scenario).default_steps, MATCH_STEPS)
        measured = measured.model_copy(update={"steps": steps})
        if measured not in requests:
            requests.append(measured)
    return requests


def short_run_stage(interview, key, report=None):
    """A verification stage: the workspace's runs (behaviour_requests) must match the same-seed
    pristine runs (sandbox/matching.py). Code that passes a check and trains differently on the
    path that showed the bug is not fixed; nor is code that only behaves when it spots a check."""
    if report:
        report(0, 1, "short training runs against the pristine code")
    trainer = trainer_of(key)
    for request in behaviour_requests(key):
        try:
            base = trainer.baseline(codebase_of(key), request)  # a pristine run that fails: no verdict
        except RunError as error:
            return [StageResult("runs against the pristine code", False, str(error))]
        training = trainer.train(interview.workspace, request, label="verify")
        try:
            match = runs_match(training_data(training), training_data(base))
        except RunError as error:
            match = Match(False, f"the run left nothing to compare: {error}")
        if not match.same:
            return [StageResult("runs against the pristine code", False, match.detail)]
    return [StageResult("runs against the pristine code", True, "trains like the pristine code")]
