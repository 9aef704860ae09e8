"""A training run as the interviewer sees it: a scenario's stages run one after another.

Each stage is one supervised run (sandbox/runner.py) of a workspace script; all stages share
a data directory, so an evaluation stage reads the checkpoint the training stage wrote. The
training record (state_dir()/trainings/<id>.json) lists its stage runs; `training_data` reads
them back as one RunData, with step numbers continued across a resumed stage.
"""

import os
import secrets
import time
from pathlib import Path

from pydantic import BaseModel, Field

from sandbox import runner
from sandbox.logparse import parse_log
from sandbox.rundata import RunData, load_run_data
from sandbox.scenarios import ScenarioError, get_scenario, stage_commands
from sandbox.state import state_dir


class TrainingRequest(BaseModel):
    scenario: str = "base"
    steps: int | None = Field(None, description="optimizer steps (default: the scenario's)")
    args: list[str] = Field(default_factory=list, description="extra flags for the training script")
    seed: int = 42
    threads: int = Field(default_factory=lambda: int(os.environ.get("BUGDRILL_THREADS", "1")))
    wall_s: float = 600.0
    memory_mb: int = 4096


class Training(BaseModel):
    id: str
    workspace: str
    request: TrainingRequest
    stages: list[str] = []  # run ids, in order
    state: str = "running"
    message: str = ""
    started: float = 0.0
    wall_s: float = 0.0


def trainings_dir():
    path = state_dir() / "trainings"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save(training):
    path = trainings_dir() / f"{training.id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(training.model_dump_json(indent=2))
    tmp.replace(path)


def load_training(training_id):
    path = trainings_dir() / f"{training_id}.json"
    if not training_id.replace("-", "").isalnum() or not path.exists():
        raise runner.RunError(f"unknown training run {training_id!r}")
    return Training.model_validate_json(path.read_text())


def new_id():
    return time.strftime("t%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def validate_args(args):
    for arg in args:
        if not arg.startswith("--") or "=" not in arg or any(c in arg for c in "\n\0"):
            raise ScenarioError(f"flags must look like --name=value, got {arg!r}")


def train(workspace, request: TrainingRequest, on_progress=None, label="", training_id=None) -> Training:
    """Run every stage of the request's scenario in `workspace`; stops at the first stage that
    does not finish. `on_progress(stage_index, stage_count, RunResult)` is called while polling.
    `training_id` (from new_id) lets a caller record the run before it starts."""
    validate_args(request.args)
    commands = request_commands(request)
    training = Training(id=training_id or new_id(), workspace=str(Path(workspace).resolve()), request=request, started=time.time())
    data_dir = trainings_dir() / training.id / "data"
    data_dir.mkdir(parents=True)
    save(training)
    env = {"PICOCHAT_BASE_DIR": str(data_dir), "OMP_NUM_THREADS": str(request.threads)}
    limits = runner.Limits(wall_s=request.wall_s, memory_mb=request.memory_mb)
    for index, (argv, nproc) in enumerate(commands):
        spec = runner.RunSpec(workspace=training.workspace, argv=argv, nproc=nproc, env=env, limits=limits,
                              quota_dirs=[str(data_dir)], label=label or request.scenario)
        run_id = runner.start_run(spec)
        training.stages.append(run_id)
        save(training)
        poll = (lambda result, i=index: on_progress(i, len(commands), result)) if on_progress else None
        result = runner.wait_run(run_id, on_poll=poll)
        training.state, training.message = result.state, result.message
        if result.state != "finished":
            break
    training.wall_s = time.time() - training.started
    save(training)
    return training


def step_offset(data: RunData):
    """A resumed stage's probe counts optimizer steps from 1; its log says where it started."""
    first_logged = min((r["step"] for r in data.log.train), default=1)
    first_probed = min((r["step"] for r in data.steps), default=1)
    return max(0, first_logged - first_probed)


def training_data(training: Training) -> RunData:
    """All stages as one RunData: logs concatenated, telemetry steps continued, the result of the
    stage that ended the training."""
    parts = [load_run_data(runner.run_dir(run_id)) for run_id in training.stages]
    if not parts:
        raise runner.RunError(f"training run {training.id} has no stage yet")
    telemetry = {}
    for part in parts:
        offset = step_offset(part)
        for rank, records in part.telemetry.items():
            shifted = [{**r, "step": r["step"] + offset} if "step" in r else r for r in records]
            telemetry.setdefault(rank, []).extend(shifted)
    stdout = "".join(p.stdout if p.stdout.endswith("\n") or not p.stdout else p.stdout + "\n" for p in parts)
    last = parts[-1]
    return RunData(run_dir=last.run_dir, spec=last.spec, result=last.result, log=parse_log(stdout), stdout=stdout,
                   stderr="".join(p.stderr for p in parts), telemetry=telemetry)


def request_commands(request: TrainingRequest):
    """[(argv after the python executable, nproc)] of every stage the request runs."""
    return stage_commands(get_scenario(request.scenario), request.steps, [*request.args, f"--seed={request.seed}"])


def describe_request(request: TrainingRequest):
    """The stages' command lines as a person would type them."""
    return [("torchrun --nproc_per_node=%d " % n if n > 1 else "python ") + " ".join(argv)
            for argv, n in request_commands(request)]
