"""`bugdrill selfcheck`: one plan of short runs that says whether this machine's device runs
bugdrill as the catalogue promises, as one table.

The same plan runs on a CPU (in CI) and on a GPU (benchmarks/gpu_selfcheck.sh): picochat's
pristine run, the fp16 scenario (CUDA only), the symptoms of a few catalogue bugs against a
same-seed baseline on the same device, a DDP bug when two GPUs are visible, the probe's memory
and step-time telemetry, and, given a nanochat checkout, its training with torch.compile on and
off. Every row says what ran, its wall time, the symptom expected and the one shown, and a
verdict. A row starts only while the time left covers its estimate, and its runs are capped
at the time left, so the whole plan ends before --minutes does.
"""

import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bug_catalog.catalog import get_bug
from sandbox.baselines import baseline
from sandbox import codebases
from sandbox.matrix import request_for
from sandbox.runner import RunError
from sandbox.scenarios import get_scenario
from sandbox.symptoms import SEVERE, classify
from sandbox.training import TrainingRequest, train, training_data
from sandbox.workspace import create_workspace
from server.selfcheck_report import failed, report, table

DEVICES = ("cuda", "cpu")
OUT_OF_TIME = "not run: out of time"
MARGIN_S = 5.0  # left between the last row's cap and --minutes, for writing the table


@dataclass
class Row:
    check: str
    ran: str
    seconds: float
    expected: str
    shown: str
    verdict: str  # "pass", "fail", "skipped: <why>" or "not run: <why>"


@dataclass(frozen=True)
class BugCheck:
    """A catalogue bug variant and the step count (per device) that shows its symptom here."""
    bug: int
    variant: str
    steps: dict  # device -> optimizer steps


# Step counts measured on a 2-core CPU (see the README's self-check section): short, yet the
# recorded classes show with a wide margin (bug 5: val loss +9% at 25 steps against 2% of noise).
PRISTINE_STEPS = 25
BUG_CHECKS = (
    BugCheck(24, "update-dropped", {"cpu": 3, "cuda": 3}),
    BugCheck(1, "before-step", {"cpu": PRISTINE_STEPS, "cuda": PRISTINE_STEPS}),
    BugCheck(5, "scale-dropped", {"cpu": PRISTINE_STEPS, "cuda": PRISTINE_STEPS}),
)
DDP_CHECK = BugCheck(22, "linear", {"cpu": 100, "cuda": 100})


class Plan:
    """The device, the deadline and what earlier rows left for later ones (the pristine run)."""

    def __init__(self, device, minutes, codebase=None):
        self.device, self.codebase = device, codebase
        self.started = time.time()
        self.deadline = self.started + minutes * 60 - MARGIN_S
        self.pristine = None

    def left(self):
        return self.deadline - time.time()

    def device_args(self, dtype=None):
        return [f"--device={self.device}", *([f"--dtype={dtype}"] if dtype else [])]

    def capped(self, request):
        """The request with its wall-clock limit cut to the time left: no run outlives the plan.
        A GPU process holds more than a CPU one (the CUDA context), so its memory cap is wider."""
        memory = 16384 if self.device == "cuda" else request.memory_mb
        return request.model_copy(update={"wall_s": max(1.0, min(request.wall_s, self.left())), "memory_mb": memory})


# --- rows ---------------------------------------------------------------------------------

def pristine_dtype(device):
    import torch  # only to ask the device what it supports

    if device == "cuda" and not torch.cuda.is_bf16_supported():
        return "float16"
    return "bfloat16"


def scenario_sets_dtype(name):
    return any(arg.startswith("--dtype=") for stage in get_scenario(name).stages for arg in stage.args)


def pristine_request(plan, scenario="base", steps=PRISTINE_STEPS, dtype=None):
    return plan.capped(TrainingRequest(scenario=scenario, steps=steps, args=plan.device_args(dtype)))


def loss_falls(data):
    series = data.loss_series()
    return len(series) >= 2 and series[-1][1] < series[0][1], series


def pristine_row(plan, name, scenario, steps, dtype):
    """A pristine run: it finishes, its loss falls, and nothing severe shows."""
    request = pristine_request(plan, scenario, steps, dtype)
    training = baseline(codebases.builtin().source, request)
    data = training_data(training)
    falls, series = loss_falls(data)
    severe = [c for c in classify(data).classes if c in SEVERE]
    shown = f"{training.state}, loss {series[0][1]:.3f} -> {series[-1][1]:.3f}" if series else training.state
    shown += f"; {', '.join(severe)}" if severe else ""
    passed = training.state == "finished" and falls and not severe
    steps = request.steps or get_scenario(scenario).default_steps
    # a state directory that already holds this baseline answers from its cache: say so
    cached = " (cached from an earlier run)" if training.started < plan.started else ""
    return data, Row(name, f"{codebases.builtin().name} {scenario}, {steps} steps, {dtype}, {plan.device}{cached}",
                     training.wall_s,
                     "finishes, loss falls", shown, "pass" if passed else "fail")


def check_pristine(plan):
    dtype = pristine_dtype(plan.device)
    plan.pristine, row = pristine_row(plan, "pristine tiny", "base", PRISTINE_STEPS, dtype)
    return row


def check_fp16(plan):
    if plan.device != "cuda":
        return skipped("fp16_cuda scenario", "skipped: CUDA only")
    return pristine_row(plan, "fp16_cuda scenario", "fp16_cuda", None, "float16")[1]


def bug_row(plan, check):
    """The variant injected into a fresh workspace and run on the device, classified against the
    pristine run of the same request there, as `bugdrill validate` (sandbox/matrix.py) does."""
    record = get_bug(check.bug)
    variant = next(v for v in record.variants if v.name == check.variant)
    request = request_for(record, variant)
    # the pristine row's dtype, unless the bug's scenario sets its own (fp16_cuda): a request equal
    # to the pristine row's shares its cached baseline
    dtype = None if scenario_sets_dtype(request.scenario) else pristine_dtype(plan.device)
    request = plan.capped(request.model_copy(update={"steps": check.steps[plan.device],
                                                     "args": [*request.args, *plan.device_args(dtype)]}))
    started = time.time()
    source = codebases.builtin().source
    base = training_data(baseline(source, request))
    workspace = Path(tempfile.mkdtemp(prefix="bugdrill-selfcheck-")) / source.name
    create_workspace(workspace, source, [(record, variant)])
    training = train(workspace, plan.capped(request), label=f"selfcheck {record.id}")
    shown = classify(training_data(training), base).classes
    shutil.rmtree(workspace.parent, ignore_errors=True)
    ran = f"bug {record.id} {record.slug} ({variant.name}), {request.scenario}, {request.steps} steps"
    passed = all(c in shown for c in variant.shows)
    return Row(f"bug {record.id}", ran, time.time() - started, ", ".join(variant.shows), ", ".join(shown),
               "pass" if passed else "fail")


def gpu_count():
    import torch

    return torch.cuda.device_count()


def check_ddp(plan):
    if plan.device != "cuda" or gpu_count() < 2:
        return skipped(f"bug {DDP_CHECK.bug} (DDP)", "skipped: needs 2 or more GPUs")
    return bug_row(plan, DDP_CHECK)


def check_probe(plan):
    """The probe's per-step telemetry of the pristine run: a step time for every step and, on CUDA,
    the allocator's memory."""
    if plan.pristine is None:
        return skipped("probe telemetry", "not run: the pristine run did not run")
    steps = plan.pristine.steps
    times = [s["dt_ms"] for s in steps if isinstance(s.get("dt_ms"), (int, float))]
    cuda_peak = max((s["cuda_peak_mb"] for s in steps if isinstance(s.get("cuda_peak_mb"), (int, float))), default=None)
    rss = max((s["rss_mb"] for s in steps if isinstance(s.get("rss_mb"), (int, float))), default=None)
    wants_cuda = plan.device == "cuda"
    expected = f"{PRISTINE_STEPS} step records with step times" + (", CUDA memory" if wants_cuda else "")
    shown = (f"{len(steps)} step records, {len(times)} timed, median {statistics.median(times):.1f} ms"
             if times else f"{len(steps)} step records, none timed")
    shown += f", CUDA peak {cuda_peak:.0f} MB" if cuda_peak is not None else ", no CUDA memory"
    shown += f", RSS {rss:.0f} MB" if rss is not None else ""
    passed = len(steps) == PRISTINE_STEPS and len(times) == len(steps) and (cuda_peak is not None) == wants_cuda
    return Row("probe telemetry", "the pristine run's telemetry", 0.0, expected, shown, "pass" if passed else "fail")


def checkout_checks(plan):
    """The rows the checkout's codebase adds (sandbox/codebases: device_checks), or one row that
    says none were asked for."""
    if plan.codebase is None:
        return [("checkout", 0, lambda plan: skipped("checkout", "skipped: no --codebase (a checkout) given"))]
    found = codebases.recognise(Path(plan.codebase))
    if found is None:
        return [("checkout", 0, lambda plan: Row("checkout", "-", 0.0, "-", "not a recognised checkout", "fail"))]
    rows = found.device_checks(plan.codebase, plan.device)
    if not rows:
        return [("checkout", 0, lambda plan: skipped("checkout", f"skipped: {found.name} has no device checks"))]
    return [(name, estimate, lambda plan, run=run: Row(**run(plan.left()))) for name, estimate, run in rows]


def skipped(name, why):
    return Row(name, "-", 0.0, "-", "-", why)


def checks(plan):
    """(name, estimated seconds on this device, function) in the order they run. A row that
    will only say why it is skipped is estimated at 0 s, so a short plan still says so."""
    cuda = plan.device == "cuda"
    ddp = cuda and gpu_count() >= 2
    return [("pristine tiny", 90 if cuda else 60, check_pristine),
            ("fp16_cuda scenario", 60 if cuda else 0, check_fp16),
            *[(f"bug {c.bug}", 60 if cuda else 20 if c.steps["cpu"] < 10 else 50, lambda plan, c=c: bug_row(plan, c))
              for c in BUG_CHECKS],
            (f"bug {DDP_CHECK.bug} (DDP)", 120 if ddp else 0, check_ddp),
            ("probe telemetry", 0, check_probe),
            *checkout_checks(plan)]


def run_plan(plan, on_row=None):
    rows = []
    for name, estimate, check in checks(plan):
        row = Row(name, "-", 0.0, "-", "-", OUT_OF_TIME) if plan.left() < estimate else safely(name, check, plan)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def safely(name, check, plan):
    """A row that raises is a failed row with the error, not the end of the plan."""
    started = time.time()
    try:
        return check(plan)
    except (RunError, ValueError, OSError) as error:
        return Row(name, "-", time.time() - started, "-", f"error: {error}", "fail")


def check_device(device):
    import torch

    if device not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")


def progress(row):
    print(f"{row.check}: {row.verdict} ({row.seconds:.1f} s) {row.shown}", file=sys.stderr, flush=True)


def selfcheck(device="cuda", minutes=8.0, codebase=None, json_path=None):
    """Run the plan, print the table, write the JSON report; the exit status (1: a row failed)."""
    check_device(device)
    if not minutes > 0:
        raise ValueError(f"--minutes must be more than 0, got {minutes}")
    if codebase is not None and not Path(codebase).is_dir():
        raise ValueError(f"--codebase {codebase} is not a directory")
    if json_path and Path(json_path).is_dir():
        raise ValueError(f"--json {json_path} is a directory: name the file to write")
    plan = Plan(device, minutes, codebase)
    rows = run_plan(plan, on_row=progress)
    result = report(plan, rows)
    print(table(rows) + f"\n\n{len(rows)} rows, {len(failed(rows))} failed or not run, {result['seconds']:.0f} s on "
        f"{result['gpu'] or device}, torch {result['torch']}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return 1 if failed(rows) else 0
