"""Whether a run of a workspace trains like the same-seed pristine run: the behaviour half of
"fixed". Compared from the outside, on what both runs logged: how each run ended, and every figure
the code sets — each step's loss and other numbers, each evaluation's, the summary's and the other
figures the scripts print, stage by stage — but those the machine sets (durations, throughput,
utilisation, memory). A validation printed as "val loss (assistant tokens)" or an evaluation
stage's accuracy counts as much as the training loss.

The tolerance: same-seed pristine runs on one machine are bit-identical, so any gap comes from
the code. A fix written differently from the pristine text (`x / math.sqrt(d)` for `x * d**-0.5`,
a reordered sum) moves the loss by float rounding only, which over a short run stays orders of
magnitude below LOSS_RTOL (tests/test_fixed_by_behaviour.py writes such fixes); the bugs whose runs
show anything move it by far more. Figures that are not losses are printed with few digits and can
move by one count (an accuracy over 50 answers): they get the symptoms' own rule, 5% or 0.01.
"""

from dataclasses import dataclass

LOSS_RTOL = 2e-3  # relative, per logged loss
# a figure that is not a loss (an accuracy, a grad norm, a fraction of parsed samples) is printed with
# few digits and can move by one count under float rounding (the symptoms' metrics rule uses it too)
FIGURE_RTOL, FIGURE_ATOL = 0.05, 0.01
# what the machine sets, not the code: durations, throughput, utilisation, memory
MACHINE_WORDS = ("time", "tok/s", "/sec", "per second", "throughput", "mfu", "memory", "mem ", " mb", "gb")
MACHINE_NAMES = {"dt", "mem", "elapsed"}


@dataclass(frozen=True)
class Match:
    same: bool
    detail: str


def machine_dependent(name, units=None):
    lowered = f"{name.lower()} "
    return (name.lower() in MACHINE_NAMES or any(word in lowered for word in MACHINE_WORDS)
            or (units or {}).get(name) == "s")


def _figures(data):
    """{(part, stage, step, field): value} of every figure the code sets: each step's and each
    evaluation's numbers, then the summary's and the other `head | field: value` lines'."""
    figures = {}
    for part in ("train", "evals"):
        for record in getattr(data.log, part):
            if "step" not in record:
                continue
            for name, value in record.items():
                if name not in ("step", "stage") and isinstance(value, (int, float)) and not machine_dependent(name):
                    figures[(part, record.get("stage", 0), record["step"], name)] = value
    units = data.log.units
    finals = {**{f"{head} {k}": v for head, fields in data.log.other.items() for k, v in fields.items()},
              **{f"summary {k}": v for k, v in data.log.summary.items()}}
    for name, value in finals.items():
        if isinstance(value, (int, float)) and not machine_dependent(name.split(" ", 1)[1], units):
            figures[("final", 0, 0, name)] = value
    return figures


def _alike(name, a, b):
    if a != a or b != b:  # NaN: alike only with NaN
        return a != a and b != b
    if "loss" in name or "bpb" in name:
        return abs(a - b) <= LOSS_RTOL * max(abs(b), 1e-12)
    return abs(a - b) <= max(FIGURE_RTOL * abs(b), FIGURE_ATOL)


def _where(point):
    part, stage, step, name = point
    return name if part == "final" else f"{name} at step {step} (stage {stage + 1})"


def runs_match(run, base) -> Match:
    """Match(same, detail): `run` against the pristine `base` (RunData of the same request). Every
    figure the pristine run logged must be logged alike; the run may log more."""
    run_state, base_state = run.result.get("state"), base.result.get("state")
    if run_state != base_state:
        return Match(False, f"the run ended '{run_state}', the pristine run '{base_state}'")
    mine, theirs = _figures(run), _figures(base)
    steps = [sum(1 for k in figures if k[0] == "train" and k[3] == "loss") for figures in (mine, theirs)]
    if steps[0] != steps[1]:  # a run cut short or stretched: said as such, not as a missing figure
        return Match(False, f"the run logged loss at {steps[0]} points, the pristine run at {steps[1]}")
    for point in sorted(theirs, key=lambda k: (k[0] == "final", k[1], k[2], k[0], k[3])):
        if point not in mine:
            return Match(False, f"the run did not log {_where(point)}, which the pristine run did")
        a, b = mine[point], theirs[point]
        if not _alike(point[3], a, b):
            return Match(False, f"{_where(point)} is {a:.6g}, the pristine run's {b:.6g}")
    return Match(True, "trains like the pristine code")
