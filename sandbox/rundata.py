"""Everything a finished (or still running) run left behind, read into one object.

A run directory (see sandbox/runner.py) holds result.json, stdout.log, stderr.log and the
probe's telemetry/rank{R}.jsonl. Views and symptoms read runs only through RunData.

A training of several stages (train then evaluate, train then resume; sandbox/training.py) is
one RunData whose log and telemetry records carry a `stage` index into `stages`. A stage that
runs an optimizer of its own (the eval script's probe) counts its steps from 1 again, so a
step number alone does not say which optimizer it belongs to: compare and name (stage, step).
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.logparse import ParsedLog, parse_log


PHASE_ORDER = {"forward": 0, "backward": 1, "loss": 2}


@dataclass
class Stage:
    index: int  # 0-based, in the order the stages ran
    script: str  # "scripts/base_eval.py"
    continues: bool = False  # its steps continue the previous stage's count (a resumed training)
    stdout: str = ""


def stage_of(record):
    return record.get("stage", 0)


def script_of(spec):
    """The script a run's argv names, as a path: "-m scripts.base_eval" -> "scripts/base_eval.py"."""
    argv = list(spec.get("argv") or [])
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1].replace(".", "/") + ".py"
    return next((a for a in argv if a.endswith(".py")), "the script")


@dataclass
class RunData:
    run_dir: Path
    spec: dict
    result: dict
    log: ParsedLog
    stdout: str
    stderr: str
    telemetry: dict[int, list[dict]] = field(default_factory=dict)  # rank -> records in order
    stages: list[Stage] = field(default_factory=list)  # empty: one stage, read from spec

    def __post_init__(self):
        if not self.stages:
            self.stages = [Stage(0, script_of(self.spec), stdout=self.stdout)]

    def records(self, kind, rank=0, stage=None):
        return [r for r in self.telemetry.get(rank, [])
                if r.get("type") == kind and (stage is None or stage_of(r) == stage)]

    def stage_steps(self, stage):
        """The stage's telemetry step records."""
        return self.records("step", stage=stage)

    def stage_name(self, stage):
        """"stage 2 of 2 (scripts/base_eval.py)"; "" for a run of one stage."""
        if len(self.stages) < 2:
            return ""
        script = self.stages[stage].script if stage < len(self.stages) else "?"
        return f"stage {stage + 1} of {len(self.stages)} ({script})"

    def at_step(self, stage, step):
        """Where a step is, in words a reader cannot misplace: a stage with an optimizer of its own
        counts from 1 again, so its step 326 is not the training's step 326."""
        if len(self.stages) < 2:
            return f"step {step}"
        if stage > 0 and not self.stages[stage].continues:
            script, count = self.stages[stage].script, len(self.stages)
            return f"step {step} of the optimizer in {script} (stage {stage + 1} of {count})"
        return f"step {step} ({self.stage_name(stage)})"

    def loss_points(self):
        """[(stage, step, loss)] from the script's own log where it prints one, else from the probe,
        decided stage by stage."""
        points = []
        for stage in range(len(self.stages)):
            logged = [(stage, r["step"], r["loss"]) for r in self.log.train
                      if stage_of(r) == stage and isinstance(r.get("loss"), float)]
            points += logged or [(stage, r["step"], r["loss"]) for r in self.stage_steps(stage)
                                 if r.get("loss") is not None]
        return points

    def val_points(self, key="val loss"):
        keys = [key, "val loss (assistant tokens)"] if key == "val loss" else [key]
        for name in keys:
            points = [(stage_of(r), r["step"], r[name]) for r in self.log.evals if isinstance(r.get(name), float)]
            if points:
                return points
        return []

    def probe_points(self, name, rank=0):
        return [(stage_of(r), r["step"], r[name]) for r in self.records("step", rank)
                if isinstance(r.get(name), (int, float))]

    def logged_points(self, key):
        return [(stage_of(r), r["step"], r[key]) for r in self.log.train if isinstance(r.get(key), float)]

    @property
    def steps(self):
        return self.records("step")

    @property
    def details(self):
        return self.records("detail")

    @property
    def nonfinite(self):
        """First NaN/Inf records, earliest step first and, within a step, in the order the values
        were computed: forward, backward, then the loss the probe saw at the step."""
        records = [r for rank in sorted(self.telemetry) for r in self.telemetry[rank] if r.get("type") == "nonfinite"]
        return sorted(records, key=lambda r: (r.get("step") or 0, PHASE_ORDER.get(r.get("phase"), 3)))

    def main_stages(self):
        """The training's own stages: the first and those that continue its step count (a resumed
        run); a stage that counts its own optimizer's steps anew is not on this curve."""
        main = {0}
        for stage in self.stages[1:]:
            if stage.continues and stage.index - 1 in main:
                main.add(stage.index)
        return main

    def loss_series(self):
        """[(step, loss)] of the training's own stages (main_stages), from the script's own log where
        it prints one, else from the probe."""
        main = self.main_stages()
        return [(step, value) for stage, step, value in self.loss_points() if stage in main]

    def val_series(self, key="val loss"):
        main = self.main_stages()
        return [(step, value) for stage, step, value in self.val_points(key) if stage in main]

    def probe_series(self, name, rank=0):
        main = self.main_stages()
        return [(step, value) for stage, step, value in self.probe_points(name, rank) if stage in main]

def read_jsonl(path):
    """Complete lines only: a run killed mid-write leaves at most one broken last line."""
    records = []
    for line in Path(path).read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_text(path):
    path = Path(path)
    return path.read_text(errors="replace") if path.exists() else ""


def load_run_data(run_dir):
    run_dir = Path(run_dir)
    result_path = run_dir / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {"state": "running"}
    spec_path = run_dir / "spec.json"
    spec = json.loads(spec_path.read_text()) if spec_path.exists() else {}
    stdout = read_text(run_dir / "stdout.log")
    telemetry = {}
    for path in sorted((run_dir / "telemetry").glob("rank*.jsonl")):
        rank = int(path.stem.removeprefix("rank"))
        telemetry[rank] = read_jsonl(path)
    return RunData(run_dir, spec, result, log_parser(spec)(stdout), stdout, read_text(run_dir / "stderr.log"),
                   telemetry)


def log_parser(spec):
    """How the run's printed lines are read: by the codebase that wrote them, where the run says."""
    if not spec.get("log_format"):
        return parse_log
    from sandbox.codebases import named

    return named(spec["log_format"]).parse_log


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)
