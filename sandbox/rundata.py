"""Everything a finished (or still running) run left behind, read into one object.

A run directory (see sandbox/runner.py) holds result.json, stdout.log, stderr.log and the
probe's telemetry/rank{R}.jsonl. Views and symptoms read runs only through RunData.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.logparse import ParsedLog, parse_log


PHASE_ORDER = {"forward": 0, "backward": 1, "loss": 2}


@dataclass
class RunData:
    run_dir: Path
    spec: dict
    result: dict
    log: ParsedLog
    stdout: str
    stderr: str
    telemetry: dict[int, list[dict]] = field(default_factory=dict)  # rank -> records in order

    def records(self, kind, rank=0):
        return [r for r in self.telemetry.get(rank, []) if r.get("type") == kind]

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

    def loss_series(self):
        """[(step, loss)] from the script's own log when it prints one, else from the probe."""
        series = [(r["step"], r["loss"]) for r in self.log.train if isinstance(r.get("loss"), float)]
        if series:
            return series
        return [(r["step"], r["loss"]) for r in self.steps if r.get("loss") is not None]

    def val_series(self, key="val loss"):
        keys = [key, "val loss (assistant tokens)"] if key == "val loss" else [key]
        for name in keys:
            series = [(r["step"], r[name]) for r in self.log.evals if isinstance(r.get(name), float)]
            if series:
                return series
        return []

    def probe_series(self, name, rank=0):
        return [(r["step"], r[name]) for r in self.records("step", rank) if isinstance(r.get(name), (int, float))]


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
    return RunData(run_dir, spec, result, parse_log(stdout), stdout, read_text(run_dir / "stderr.log"), telemetry)


def finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)
