"""What a run showed, against its baseline, in an engineer's words.

`classify(run, baseline)` returns an Incident: the symptom classes seen and a one-paragraph
summary that an interviewer can open with ("Training loss became NaN at step 347..."). It
reports what was observed (figures, steps, the module the probe saw go non-finite, the
exception and where it was raised), never a cause: no bug names, no guesses.

Classes, roughly in order of severity:
    crashed, timed_out, memory_limit, disk_limit, output_limit, interrupted
    nonfinite            loss or activations became NaN/Inf
    diverged             loss rose well above where it started or had got to
    not_learning         loss stayed near its first value while the baseline's fell
    below_entropy_floor  validation better than the data allows: the model sees what it predicts
    slower_than_baseline / better_than_baseline   final validation (or train) loss off the baseline
    train_val_gap        validation rising while train loss falls, beyond the baseline's gap
    stopped_early        fewer steps than planned, without a crash
    metrics_differ       the script's own metrics (accuracy, probe, ...) off the baseline
    memory_growth        resident memory climbing step over step
    throughput_drop      steps taking much longer than the baseline's
    peak_memory_higher   the run's peak memory well above the baseline's
    grad_norm_off        gradient norm off the baseline's by a steady factor, or the norm the optimizer
                         sees off it where the logged norm matches
    train_loss_off       logged train loss off the baseline's by a steady factor that validation lacks
    lr_schedule_off      learning rate not the baseline's
    weight_decay_off     weight decay in the optimizer not the baseline's
    ranks_out_of_sync    parameters differ between ranks
    degenerate_samples   samples empty, repetitive, or unparseable where the baseline's parse
    new_warnings         stderr lines the baseline did not print
    no_visible_effect    none of the above at this length
"""

import math
import re
import statistics
from dataclasses import dataclass, field

from sandbox.rundata import RunData, finite

LIMIT_STATES = {
    "timed_out": "The run did not finish within its wall-time limit and was stopped",
    "memory_limit": "The run was stopped when it went over its memory limit",
    "disk_limit": "The run was stopped when its files went over the disk quota",
    "output_limit": "The run was stopped when its output went over the size limit",
    "interrupted": "The run was interrupted before it finished",
    "stopped": "The run was stopped on request",
}
FLOOR_MARGIN_BPB = 0.02  # the floor is exact on held-out text, so this margin only absorbs noise
SLOWDOWN = 3.0  # step-time ratio against a cached baseline that is a symptom rather than load
SEVERE = {"crashed", "nonfinite", "diverged", "not_learning", "timed_out", "memory_limit"}
COMPARATIVE = {"slower_than_baseline", "better_than_baseline", "train_loss_off"}
METRIC_SKIP = {"time", "steps", "entropy floor bpb", "best val loss"}


@dataclass
class Observation:
    kind: str
    text: str
    step: int | None = None


@dataclass
class Incident:
    classes: list[str]
    summary: str
    observations: list[Observation] = field(default_factory=list)


def classify(run: RunData, baseline: RunData | None = None, tolerance=0.02) -> Incident:
    """`tolerance`: relative change of final loss treated as noise (widen it with a seed band)."""
    found = []
    for detector in (ended, nonfinite, diverged_or_flat, below_floor, against_baseline_loss, gap,
                     stopped_early, metrics, memory_growth, throughput, grad_norm, lr_schedule,
                     ranks_sync, samples, warnings):
        found.extend(detector(run, baseline, tolerance))
    # "slower than baseline" adds nothing to a NaN or a stall; a run that crashed only after its
    # last planned step (while shutting down, or in a later stage) trained like any other
    if any(o.kind in SEVERE and not (o.kind == "crashed" and completed(run)) for o in found):
        found = [o for o in found if o.kind not in COMPARATIVE]
    if not found:
        steps = last_step(run)
        found.append(Observation("no_visible_effect", f"Nothing stands out over {steps} steps: loss, validation, "
                                 "gradient norms, learning rate and memory track the baseline." if baseline else
                                 f"The run finished {steps} steps with nothing out of the ordinary in its log."))
    classes = list(dict.fromkeys(o.kind for o in found))
    return Incident(classes, " ".join(o.text for o in found), found)


# --- how the run ended -------------------------------------------------------------------

TRACE_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')
EXCEPTION_LINE = re.compile(r"^(\w[\w.]*(Error|Exception|Interrupt|Warning|Exit)|AssertionError|KeyError)\b.*")


def last_step(run):
    steps = [s for s, _ in run.loss_series()]
    return max(steps) if steps else 0


def completed(run):
    planned = run.log.planned_steps
    return bool(planned) and last_step(run) >= planned


def traceback_origin(stderr, workspace):
    """(exception line, 'file:line in function' of the innermost frame in the workspace)."""
    lines = stderr.splitlines()
    exception = next((ln.strip() for ln in reversed(lines) if EXCEPTION_LINE.match(ln.strip())), None)
    origin = None
    for line in lines:
        match = TRACE_FRAME.match(line)
        if match and workspace and match.group(1).startswith(str(workspace)):
            path = match.group(1)[len(str(workspace)):].lstrip("/")
            origin = f"{path}:{match.group(2)} in {match.group(3)}"
    return exception, origin


def ended(run, baseline, tolerance):
    state = run.result.get("state")
    step = last_step(run)
    progress = f"after step {step}" if step else "before the first logged step"
    if completed(run):  # the training itself was done: a rank died at shutdown, or a later stage failed
        progress = f"after its last planned step ({step})"
    if state in LIMIT_STATES:
        return [Observation(state, f"{LIMIT_STATES[state]} ({run.result.get('message', '')}), {progress}.", step)]
    if state != "failed":
        return []
    exception, origin = traceback_origin(run.stderr, run.spec.get("workspace"))
    how = run.result.get("message") or "exited with an error"
    text = f"The run crashed {progress} ({how})"
    if exception:
        text += f": {exception}"
    if origin:
        text += f", raised at {origin}"
    return [Observation("crashed", text + ".", step)]


# --- the loss curve ----------------------------------------------------------------------

def first_nonfinite_step(series):
    return next((s for s, v in series if not finite(v)), None)


def nonfinite(run, baseline, tolerance):
    series = run.loss_series()
    step = first_nonfinite_step(series)
    records = run.nonfinite
    if step is None and not records:
        return []
    parts = []
    if step is not None:
        value = next(v for s, v in series if s == step)
        finite_before = [v for s, v in series if s < step]
        before = f" (it was {finite_before[-1]:.4f} the step before)" if finite_before else ""
        parts.append(f"Training loss became {value} at step {step}{before}.")
    for record in [r for r in records if r.get("module")][:2]:
        where = f" in {record['module']}" if record.get("module") else ""
        parts.append(f"The first non-finite value in the {record.get('phase', '?')} pass appeared at step "
                     f"{record.get('step')}{where} ({record.get('tensor', 'tensor')}).")
    return [Observation("nonfinite", " ".join(parts), step)]


def window_mean(values):
    values = [v for v in values if finite(v)]
    return statistics.fmean(values) if values else float("nan")


def start_and_end(series):
    """Mean loss over the first few and the last tenth of the steps."""
    values = [v for _, v in series]
    k = max(1, len(values) // 10)
    return window_mean(values[:3]), window_mean(values[-k:])


def diverged_or_flat(run, baseline, tolerance):
    series = [(s, v) for s, v in run.loss_series() if finite(v)]
    if len(series) < 10:
        return []
    start, end = start_and_end(series)
    lowest = min(v for _, v in series)
    if end > start * 1.05 or (end > lowest * 1.5 and end - lowest > 0.5):
        return [Observation("diverged", f"The loss went from {start:.3f} over the first steps down to {lowest:.3f} "
                            f"and back up to {end:.3f} by step {series[-1][0]}.", series[-1][0])]
    if baseline is None:
        return []
    base = [(s, v) for s, v in baseline.loss_series() if finite(v)]
    if len(base) < 10:
        return []
    base_start, base_end = start_and_end(base)
    if end > 0.9 * start and base_end < 0.8 * base_start:
        return [Observation("not_learning", f"The loss barely moved: {start:.3f} over the first steps, {end:.3f} at "
                            f"the end (step {series[-1][0]}), while the baseline fell from {base_start:.3f} to "
                            f"{base_end:.3f}.", series[-1][0])]
    return []


def below_floor(run, baseline, tolerance):
    floors = [r.get("entropy floor bpb") for r in run.log.evals if finite(r.get("entropy floor bpb"))]
    points = run.val_series("val bpb")
    if not floors or not points:
        return []
    floor = floors[-1]
    below = [(s, v) for s, v in points if v < floor - FLOOR_MARGIN_BPB]
    if not below:
        return []
    step, value = below[0]
    best = min(v for _, v in points)
    return [Observation("below_entropy_floor", f"Validation reached {value:.4f} bits per byte at step {step}, below the "
                        f"entropy floor of the validation text ({floor:.4f}), and got down to {best:.4f}; the "
                        f"baseline never goes below the floor.", step)]


def steps_to_reach(series, value):
    return next((s for s, v in series if finite(v) and v <= value), None)


def final_value(series):
    values = [v for _, v in series if finite(v)]
    return values[-1] if values else None


def against_baseline_loss(run, baseline, tolerance):
    if baseline is None:
        return []
    which, mine, theirs = "validation loss", run.val_series(), baseline.val_series()
    if not mine or not theirs:
        which, mine, theirs = "train loss (mean of the last tenth)", run.loss_series(), baseline.loss_series()
        if len(mine) < 10 or len(theirs) < 10:
            return []
        mine_end, theirs_end = start_and_end(mine)[1], start_and_end(theirs)[1]
    else:
        mine_end, theirs_end = final_value(mine), final_value(theirs)
    if not (finite(mine_end) and finite(theirs_end)) or theirs_end <= 0:
        return []
    change = mine_end / theirs_end - 1
    step = mine[-1][0]
    found = []
    if change > tolerance:
        text = (f"It learns more slowly than the baseline: {which} {mine_end:.4f} at step {step} against the "
                f"baseline's {theirs_end:.4f} ({change:+.1%}).")
        reached = steps_to_reach(theirs, mine_end)
        if reached:
            text += f" The baseline was already there by step {reached}."
        found.append(Observation("slower_than_baseline", text, step))
    elif change < -tolerance:
        found.append(Observation("better_than_baseline", f"Its {which} is lower than the baseline's: {mine_end:.4f} at "
                                 f"step {step} against {theirs_end:.4f} ({change:+.1%}).", step))
    if which == "validation loss":
        found.extend(train_loss_off(run, baseline, change, tolerance))
    return found


def train_loss_off(run, baseline, val_change, tolerance):
    """The logged train loss off the baseline's by a steady factor that the validation loss does
    not share (it matches, or is off by far less)."""
    ratios = ratio_series(run.loss_series(), baseline.loss_series())
    if len(ratios) < 5:
        return []
    factor = statistics.median(r for _, r in ratios)
    if 0.9 <= factor <= 1.1:
        return []
    steady = sum(abs(r / factor - 1) < 0.15 for _, r in ratios) >= 0.8 * len(ratios)
    if not steady or abs(math.log(factor)) < 3 * abs(math.log1p(val_change)):
        return []
    val = "matches it" if abs(val_change) <= tolerance else f"is within {abs(val_change):.0%} of it"
    return [Observation("train_loss_off", f"The logged train loss runs at {factor:.2f}x the baseline's while the "
                        f"validation loss {val}.")]


def gap(run, baseline, tolerance):
    val = [(s, v) for s, v in run.val_series() if finite(v)]
    train = [(s, v) for s, v in run.loss_series() if finite(v)]
    if len(val) < 3 or len(train) < 10:
        return []
    best_step, best = min(val, key=lambda p: p[1])
    end_val, end_train = val[-1][1], start_and_end(train)[1]
    rising = end_val > best + 0.05 and val[-1][0] > best_step
    base_gap = 0.0
    if baseline is not None and baseline.val_series() and len(baseline.loss_series()) >= 10:
        base_gap = final_value(baseline.val_series()) - start_and_end(baseline.loss_series())[1]
    if rising and end_val - end_train > base_gap + 0.15:
        return [Observation("train_val_gap", f"Validation loss bottomed out at {best:.4f} (step {best_step}) and rose to "
                            f"{end_val:.4f} by step {val[-1][0]} while the train loss kept falling to {end_train:.4f}.",
                            best_step)]
    return []


def stopped_early(run, baseline, tolerance):
    planned, step = run.log.planned_steps, last_step(run)
    if run.result.get("state") != "finished" or not planned or step >= planned:
        return []
    note = next((n for n in run.log.notes if "stop" in n.lower()), "")
    base_step = last_step(baseline) if baseline else None
    text = f"The run ended at step {step} of the {planned} planned" + (f" (\"{note}\")" if note else "")
    if base_step:
        text += f"; the baseline ran to step {base_step}"
    return [Observation("stopped_early", text + ".", step)]


# --- the script's own metrics ------------------------------------------------------------

def numeric_metrics(run):
    figures = {}
    for head, fields in run.log.other.items():
        prefix = "" if head == "fields" else f"{head} "
        figures.update({f"{prefix}{k}": v for k, v in fields.items() if isinstance(v, float)})
    figures.update({k: v for k, v in run.log.summary.items() if isinstance(v, float)})
    # losses and bpb have detectors of their own; per-epoch means are figures of the log like any other
    return {k: v for k, v in figures.items()
            if k not in METRIC_SKIP and (k.startswith("epoch") or ("loss" not in k and "bpb" not in k))}


def same_training(run, baseline):
    ratios = ratio_series(run.loss_series(), baseline.loss_series())
    return bool(ratios) and all(abs(r - 1) < 1e-3 for _, r in ratios)


def metrics(run, baseline, tolerance):
    if baseline is None:
        return []
    mine, theirs = numeric_metrics(run), numeric_metrics(baseline)
    if not same_training(run, baseline):  # per-epoch means then only repeat what the loss curve says
        mine = {k: v for k, v in mine.items() if not k.startswith("epoch")}
    differing = []
    for name in mine.keys() & theirs.keys():
        a, b = mine[name], theirs[name]
        if finite(a) and finite(b) and abs(a - b) > max(0.05 * abs(b), 0.01):
            differing.append(f"{name} {a:g} (baseline {b:g})")
    if not differing:
        return []
    return [Observation("metrics_differ", "The script's metrics differ from the baseline's: "
                        + "; ".join(sorted(differing)[:6]) + ".")]


# --- probe telemetry ---------------------------------------------------------------------

def growth(series, skip=5):
    values = [v for s, v in series if s > skip and finite(v)]
    if len(values) < 10:
        return None
    k = max(2, len(values) // 10)
    return window_mean(values[:k]), window_mean(values[-k:])


def peak_memory(run, baseline):
    mine, theirs = run.result.get("peak_memory_mb"), baseline.result.get("peak_memory_mb") if baseline else None
    if finite(mine) and finite(theirs) and theirs > 0 and mine > 1.3 * theirs and mine - theirs > 50:
        return [Observation("peak_memory_higher", f"Peak memory of the run was {mine:.0f} MB against the "
                            f"baseline's {theirs:.0f} MB ({mine / theirs:.1f}x).")]
    return []


def memory_growth(run, baseline, tolerance):
    mine = growth(run.probe_series("rss_mb"))
    if not mine:
        return peak_memory(run, baseline)
    first, last = mine
    grew = last - first
    theirs = growth(baseline.probe_series("rss_mb")) if baseline else None
    base_grew = theirs[1] - theirs[0] if theirs else 0.0
    if grew > max(30.0, 0.1 * first) and grew > 3 * max(base_grew, 1.0):
        steps = run.probe_series("rss_mb")
        return [Observation("memory_growth", f"Resident memory climbs step over step: {first:.0f} MB early on, "
                            f"{last:.0f} MB by step {steps[-1][0]} (the baseline: {base_grew:+.0f} MB over the "
                            "same steps).", steps[-1][0])]
    return peak_memory(run, baseline)


def step_times(run):
    series = [(s, v) for s, v in run.probe_series("dt_ms")[1:] if finite(v)]
    return series or [(r["step"], r["dt"] * 1000) for r in run.log.train[1:] if finite(r.get("dt"))]


def throughput(run, baseline, tolerance):
    if baseline is None:
        return []
    # the same steps of both runs (the first stage's, where a later stage numbers its steps anew),
    # so a run that ended early is not compared with the steps of a stage it never reached
    mine, theirs = first_by_step(step_times(run)), first_by_step(step_times(baseline))
    shared = mine.keys() & theirs.keys()
    if not shared:
        return []
    mine, theirs = statistics.median(mine[s] for s in shared), statistics.median(theirs[s] for s in shared)
    # the baseline is cached from another time, so the machine's load may differ by 2x or more
    if mine < SLOWDOWN * theirs:
        return []
    return [Observation("throughput_drop", f"Steps take {mine / theirs:.1f}x as long as the baseline's "
                        f"({mine:.0f} ms against {theirs:.0f} ms, median).")]


def by_occurrence(series):
    """{(step, n): value}, n counting repeats of a step: a later stage (the eval script's probe
    training) numbers its steps anew, and its step 1 is paired with the other run's second step 1."""
    seen, keyed = {}, {}
    for step, value in series:
        n = seen[step] = seen.get(step, -1) + 1
        keyed[step, n] = value
    return keyed


def ratio_series(mine, theirs):
    theirs = by_occurrence(theirs)
    return [(s, v / theirs[s, n]) for (s, n), v in by_occurrence(mine).items()
            if (s, n) in theirs and finite(v) and finite(theirs[s, n]) and theirs[s, n] > 0]


def logged(run, key):
    return [(r["step"], r[key]) for r in run.log.train if isinstance(r.get(key), float)]


def grad_norm(run, baseline, tolerance):
    if baseline is None:
        return []
    observations = []
    for label, mine, theirs in (
        ("logged grad norm", logged(run, "grad norm"), logged(baseline, "grad norm")),
        ("gradient norm the optimizer sees", run.probe_series("grad_norm"), baseline.probe_series("grad_norm")),
    ):
        ratios = ratio_series(mine, theirs)
        if len(ratios) < 5:
            continue
        factor = statistics.median(r for _, r in ratios)
        if not 0.7 <= factor <= 1.4:
            theirs = by_occurrence(theirs)
            (step, n), value = [(key, v) for key, v in by_occurrence(mine).items() if key in theirs][len(ratios) // 2]
            observations.append(f"the {label} runs at {factor:.2f}x the baseline's "
                                f"({value:.3f} at step {step}, baseline {theirs[step, n]:.3f})")
    if not observations:
        return seen_departs(run, baseline)
    text = "; ".join(observations)
    return [Observation("grad_norm_off", text[0].upper() + text[1:] + ".")]


def first_by_step(series):
    first = {}
    for step, value in series:
        first.setdefault(step, value)
    return first


def seen_departs(run, baseline):
    """Steps at which the logged grad norm matches the baseline's but the norm of the gradients
    the optimizer consumes does not."""
    logged_mine, logged_theirs = first_by_step(logged(run, "grad norm")), first_by_step(logged(baseline, "grad norm"))
    seen_theirs = first_by_step(baseline.probe_series("grad_norm"))  # a later stage may number its steps anew
    steps = [(s, v) for s, v in first_by_step(run.probe_series("grad_norm")).items()
             if s in logged_mine and s in logged_theirs and s in seen_theirs and finite(v)
             and finite(seen_theirs[s]) and seen_theirs[s] > 0 and logged_theirs[s] > 0
             and abs(logged_mine[s] / logged_theirs[s] - 1) < 0.005 and abs(v / seen_theirs[s] - 1) > 0.1]
    if len(steps) < 2:
        return []
    step, value = steps[0]
    return [Observation("grad_norm_off", f"The gradient norm the optimizer sees departs from the baseline's where the "
                        f"logged grad norm matches it: {value:.3f} against {seen_theirs[step]:.3f} at step {step} "
                        f"(logged {logged_mine[step]:.3f} in both), at {len(steps)} steps in all.", step)]


def lr_schedule(run, baseline, tolerance):
    if baseline is None:
        return []
    mine, theirs = logged(run, "lr"), dict(logged(baseline, "lr"))
    source = "logged learning rate"
    if not mine:
        mine = [(s, v[0]) for s, v in ((r["step"], r.get("lr")) for r in run.steps) if isinstance(v, list) and v]
        theirs = {r["step"]: r["lr"][0] for r in baseline.steps if isinstance(r.get("lr"), list) and r["lr"]}
        source = "learning rate in the optimizer"
    off = [(s, v, theirs[s]) for s, v in mine if s in theirs and abs(v - theirs[s]) > 0.01 * abs(theirs[s]) + 1e-12]
    if not off:
        return weight_decay(run, baseline)
    step, value, expected = off[0]
    end_step, end_value = mine[-1]
    return [Observation("lr_schedule_off", f"The {source} departs from the baseline's at step {step} ({value:.2e} "
                        f"against {expected:.2e}); at step {end_step} it is {end_value:.2e} against "
                        f"{theirs.get(end_step, float('nan')):.2e}.", step)]


def weight_decay(run, baseline):
    theirs = {r["step"]: r.get("weight_decay") for r in baseline.steps}
    for record in run.steps:
        mine, expected = record.get("weight_decay"), theirs.get(record["step"])
        if isinstance(mine, list) and isinstance(expected, list) and len(mine) == len(expected):
            if any(abs(a - b) > 0.01 * abs(b) + 1e-12 for a, b in zip(mine, expected) if finite(a) and finite(b)):
                return [Observation("weight_decay_off", f"The weight decay in the optimizer departs from the "
                                    f"baseline's at step {record['step']} ({mine} against {expected}).",
                                    record["step"])]
    return []


def ranks_sync(run, baseline, tolerance):
    ranks = sorted(run.telemetry)
    if len(ranks) < 2:
        return []
    by_step = {}
    for rank in ranks:
        for record in run.records("detail", rank):
            by_step.setdefault(record["step"], {})[rank] = record.get("param_norm", {})
    for step in sorted(by_step):
        norms = by_step[step]
        if len(norms) < 2:
            continue
        reference = norms[ranks[0]]
        for rank, values in norms.items():
            for name, value in values.items():
                other = reference.get(name)
                if finite(value) and finite(other) and abs(value - other) > 1e-5 * max(abs(other), 1e-12):
                    return [Observation("ranks_out_of_sync", f"The ranks' weights differ from step {step} on "
                                        f"({name}: norm {other:.6g} on rank {ranks[0]}, {value:.6g} on rank {rank}).",
                                        step)]
    return []


# --- samples and stderr ------------------------------------------------------------------

def degenerate(text):
    words = text.split()
    return not words or (len(words) >= 6 and len(set(words)) <= len(words) // 4)


def samples(run, baseline, tolerance):
    texts = run.log.samples
    if not texts:
        return []
    bad = [t for t in texts if degenerate(t)]
    if bad and not (baseline and any(degenerate(t) for t in baseline.log.samples)):
        return [Observation("degenerate_samples", f"{len(bad)} of {len(texts)} samples are empty or repetitive, e.g. "
                            f"{bad[0][:80]!r}.")]
    return []


NORMALISE = re.compile(r"0x[0-9a-f]+|\d+(\.\d+)?")


def warning_lines(stderr):
    return {NORMALISE.sub("#", ln.strip()): ln.strip() for ln in stderr.splitlines()
            if "Warning" in ln or "warning" in ln}


def warnings(run, baseline, tolerance):
    if run.result.get("state") == "failed":
        return []  # the crash observation already quotes stderr
    mine = warning_lines(run.stderr)
    theirs = warning_lines(baseline.stderr) if baseline else {}
    new = [line for key, line in mine.items() if key not in theirs]
    if not new:
        return []
    return [Observation("new_warnings", f"stderr has {len(new)} warning line(s) the baseline does not, e.g. "
                        f"\"{new[0][:200]}\".")]
