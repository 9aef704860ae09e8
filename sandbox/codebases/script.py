"""A codebase trained by one script with flags: most of the protocol, for a plugin to fill in.

A subclass names its script, the flags that set steps and seed, the other flags a request may
add (with their ranges), and how to read its log lines; runs, baselines (cached like any other),
other-seed bands and the short runs a fix is judged by come from here. Its training data must
be made by the script itself or be part of the checkout: nothing is downloaded.
"""

import time
from pathlib import Path

from pydantic import BaseModel, Field

from sandbox import runner
from sandbox.baselines import BAND_SEEDS, baseline_key, cached
from sandbox.codebases import Codebase, CodebaseError
from sandbox.scenarios import ScenarioError, check_ranged_flags
from sandbox.training import (
    Training, TrainingRequest, new_id, process_identity, run_single_stage, save, trainings_dir,
)


class ScriptRequest(BaseModel):
    steps: int = Field(100, ge=1)
    seed: int = 42
    args: list[str] = Field(default_factory=list, description="further flags for the script (--name=value)")
    threads: int = 1
    wall_s: float = 600.0
    memory_mb: int = 4096


class ScriptCodebase(Codebase):
    scenarios = ()  # every run is the one script
    script = "train.py"
    steps_flag = "--steps"
    seed_flag = "--seed"
    # the environment variable that gives the script its run's own directory (checkpoints, any
    # data it makes): the workspace itself is read-only while it runs
    data_env = None
    accepted_flags = {}  # name (no dashes): (low, high); every other flag is refused
    default_steps = 100
    max_steps = 2000
    match_steps = 60
    markers = ()

    @property
    def looks_for(self):
        return ", ".join(self.markers)

    def recognises(self, path):
        return bool(self.markers) and all((path / marker).is_file() for marker in self.markers)

    def review_files(self):
        return {self.script}

    def default_request(self, key):
        return ScriptRequest(steps=self.default_steps)

    def request(self, base, scenario=None, steps=None, args=None, seed=None):
        if scenario is not None:
            raise CodebaseError(f"this codebase ({self.name}) has no scenarios: every run is its {self.script}; "
                                "pass steps, seed and args")
        update = {k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None}
        if args is not None:
            update["args"] = [*base.args, *args]
        request = base.model_copy(update=update)
        self.check(request)
        return request

    def check(self, request):
        try:
            check_ranged_flags(request.steps, request.args, self.max_steps, self.accepted_flags, self.name)
        except ScenarioError as error:
            raise CodebaseError(str(error)) from None

    def argv(self, request):
        return [self.script, f"{self.steps_flag}={request.steps}", f"{self.seed_flag}={request.seed}", *request.args]

    def commands(self, request):
        return ["python " + " ".join(self.argv(request))]

    def train(self, workspace, request, on_progress=None, label="", training_id=None, trusted=False):
        """The script once in `workspace` under the runner, with the probe; only a pristine copy
        is `trusted`, anything else runs in the jail."""
        self.check(request)
        training = Training(id=training_id or new_id(), workspace=str(Path(workspace).resolve()),
                            request=TrainingRequest(scenario="base", steps=request.steps, seed=request.seed,
                                                    args=list(request.args), threads=request.threads,
                                                    wall_s=request.wall_s, memory_mb=request.memory_mb),
                            started=time.time(), owner=process_identity())
        data_dir = trainings_dir() / training.id / "data"
        data_dir.mkdir(parents=True)
        save(training)
        env = {"OMP_NUM_THREADS": str(request.threads), **({self.data_env: str(data_dir)} if self.data_env else {})}
        spec = runner.RunSpec(workspace=training.workspace, argv=self.argv(request), env=env, quota_dirs=[str(data_dir)],
                              label=label or self.name, limits=runner.Limits(wall_s=request.wall_s,
                                                                             memory_mb=request.memory_mb),
                              untrusted=not trusted, log_format=self.name)
        return run_single_stage(training, spec, on_progress)

    def baseline(self, source, request, on_progress=None):
        return cached(baseline_key(source, request), source, request,
                      lambda workspace: self.train(workspace, request, label="baseline", on_progress=on_progress,
                                                   trusted=True))

    def band(self, source, request):
        return [self.baseline(source, request.model_copy(update={"seed": seed})) for seed in BAND_SEEDS]

    def behaviour_requests(self, key):
        return [ScriptRequest(steps=min(self.default_steps, self.match_steps))]
