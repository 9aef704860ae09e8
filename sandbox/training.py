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

from sandbox import codebases, runner
from sandbox.logparse import ParsedLog
from sandbox.rundata import RunData, Stage, load_run_data
from sandbox.scenarios import check_flags, get_scenario, path_flags_inside, stage_commands
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
    # [pid, start time in clock ticks] of the process that runs the stages: its supervisors outlive
    # it on purpose, so a server started later can tell an orphan (owner gone) from a live run
    owner: list[int] | None = None


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
    """Only picochat's flags that a request may set, each within its range (scenarios.FLAGS)."""
    check_flags(args)


def train(workspace, request: TrainingRequest, on_progress=None, label="", training_id=None,
          trusted=False) -> Training:
    """Run every stage of the request's scenario in `workspace`; stops at the first stage that
    does not finish. `on_progress(stage_index, stage_count, RunResult)` is called while polling.
    `training_id` (from new_id) lets a caller record the run before it starts. Only a pristine
    copy (a baseline) is `trusted`: anything else runs in the jail (sandbox/jail.py)."""
    commands = request_commands(request)
    training = Training(id=training_id or new_id(), workspace=str(Path(workspace).resolve()), request=request,
                        started=time.time(), owner=process_identity())
    data_dir = trainings_dir() / training.id / "data"
    path_flags_inside(request.args, training.workspace, data_dir)
    data_dir.mkdir(parents=True)
    save(training)
    env = {codebases.builtin().data_env: str(data_dir), "OMP_NUM_THREADS": str(request.threads)}
    limits = runner.Limits(wall_s=request.wall_s, memory_mb=request.memory_mb)
    for index, (argv, nproc) in enumerate(commands):
        spec = runner.RunSpec(workspace=training.workspace, argv=argv, nproc=nproc, env=env, limits=limits,
                              quota_dirs=[str(data_dir)], label=label or request.scenario, untrusted=not trusted)
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


def run_single_stage(training: Training, spec, on_progress=None) -> Training:
    """Run a one-stage training's only command (`spec`) to its end, recording it as it goes."""
    run_id = runner.start_run(spec)
    training.stages.append(run_id)
    save(training)
    poll = (lambda result: on_progress(0, 1, result)) if on_progress else None
    result = runner.wait_run(run_id, on_poll=poll)
    training.state, training.message = result.state, result.message
    training.wall_s = time.time() - training.started
    save(training)
    return training


def step_offset(data: RunData):
    """A resumed stage's probe counts optimizer steps from 1; its log says where it started."""
    first_logged = min((r["step"] for r in data.log.train), default=1)
    first_probed = min((r["step"] for r in data.steps), default=1)
    return max(0, first_logged - first_probed)


def training_data(training: Training) -> RunData:
    """All stages as one RunData: logs concatenated, telemetry steps continued across a resumed
    stage, the result of the stage that ended the training. Every log and telemetry record
    carries `stage` (its index in RunData.stages) and `script`, so views and symptoms can keep a
    stage that counts its own optimizer's steps from 1 apart from the training's steps."""
    parts = [load_run_data(runner.run_dir(run_id)) for run_id in training.stages]
    if not parts:
        raise runner.RunError(f"training run {training.id} has no stage yet")
    telemetry, stages = {}, []
    for index, part in enumerate(parts):
        offset = step_offset(part)
        script = part.stages[0].script
        stages.append(Stage(index, script, continues=index > 0 and offset > 0, stdout=part.stdout))
        for rank, records in part.telemetry.items():
            tagged = [{**r, "step": r["step"] + offset} if "step" in r else dict(r) for r in records]
            telemetry.setdefault(rank, []).extend({**r, "stage": index, "script": script} for r in tagged)
    stdout = "".join(p.stdout if p.stdout.endswith("\n") or not p.stdout else p.stdout + "\n" for p in parts)
    last = parts[-1]
    return RunData(run_dir=last.run_dir, spec=last.spec, result=last.result, log=merged_log(parts), stdout=stdout,
                   stderr="".join(p.stderr for p in parts), telemetry=telemetry, stages=stages)


def merged_log(parts):
    """The stages' parsed logs as one, as parsing their concatenated output would give (a later
    summary or `head | ...` line wins), with each step and validation record tagged by stage."""
    log = ParsedLog()
    for index, part in enumerate(parts):
        script = part.stages[0].script
        log.train += [{**r, "stage": index, "script": script} for r in part.log.train]
        log.evals += [{**r, "stage": index, "script": script} for r in part.log.evals]
        log.samples += part.log.samples
        log.summary = part.log.summary or log.summary
        fields = {**log.other.get("fields", {}), **part.log.other.get("fields", {})}
        log.other.update(part.log.other)
        if fields:
            log.other["fields"] = fields
        log.notes += part.log.notes
        log.planned_steps = part.log.planned_steps or log.planned_steps
        log.units.update(part.log.units)
    return log


def request_commands(request: TrainingRequest):
    """[(argv after the python executable, nproc)] of every stage the request runs."""
    validate_args(request.args)
    return stage_commands(get_scenario(request.scenario), request.steps, [*request.args, f"--seed={request.seed}"])


def describe_request(request: TrainingRequest):
    """The stages' command lines as a person would type them."""
    return [("torchrun --nproc_per_node=%d " % n if n > 1 else "python ") + " ".join(argv)
            for argv, n in request_commands(request)]


# --- orphans ------------------------------------------------------------------------------

def process_identity(pid=None):
    """[pid, start ticks]: a pid alone may be reused by a new process after the owner dies."""
    pid = os.getpid() if pid is None else pid
    return [pid, start_ticks(pid) or 0]


def start_ticks(pid):
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_alive(owner):
    pid, ticks = owner
    if Path("/proc/self/stat").exists():
        return start_ticks(pid) == ticks
    try:  # no /proc (macOS): the pid alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_orphans():
    """Stop every training (interview runs and baselines alike) still running whose owning process
    is gone, e.g. a server killed with SIGKILL, and mark it interrupted. Returns their ids."""
    stopped = []
    for path in sorted(trainings_dir().glob("*.json")):
        try:
            training = Training.model_validate_json(path.read_text())
        except ValueError:
            continue  # half-written by a process that died: nothing of it to stop
        if training.state != "running" or training.owner is None or owner_alive(training.owner):
            continue
        for run_id in training.stages:
            try:
                runner.stop_run(run_id)
            except runner.RunError:
                pass  # its files are gone
        training.state, training.message = "interrupted", "the process that ran it ended before it did"
        save(training)
        stopped.append(training.id)
    return stopped
