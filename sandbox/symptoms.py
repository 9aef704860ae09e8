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
    stopped_early        fewer steps than planned, without a crash, where the baseline went on
    did_not_stop_early   the baseline stopped early (patience) and the run trained past that step
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
    departs_from_baseline  the aggregate curves leave the same-seed baseline's at some step, with
                         nothing above to say more (the departure is said in every summary)
    no_visible_effect    none of the above at this length

Runs of several stages are compared stage by stage (a stage with an optimizer of its own counts
its steps from 1: its step 326 is named as such), and runs of different length at the steps
both have. What the baseline shows too (a NaN, zero gradients, a divergence) is not a symptom.
"""

import math
import re
import statistics
from dataclasses import dataclass, field

from sandbox.jail import WORKSPACE as JAIL_WORKSPACE  # where an untrusted run sees its workspace
from sandbox.matching import FIGURE_ATOL, FIGURE_RTOL  # one rule for a figure that is not a loss
from sandbox.rundata import RunData, finite, stage_of

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
    departure = departs(run, baseline)
    # "slower than baseline" adds nothing to a NaN or a stall; a run that crashed only after its
    # last planned step (while shutting down, or in a later stage) trained like any other
    if any(o.kind in SEVERE and not (o.kind == "crashed" and completed(run)) for o in found):
        found = [o for o in found if o.kind not in COMPARATIVE]
    if departure:
        found.append(departure)
    if not found:
        steps = last_step(run)
        found.append(Observation("no_visible_effect", f"Nothing stands out over {steps} steps: loss, validation, "
                                 "gradient norms and learning rate match the same-seed baseline's at every "
                                 "step." + figures_alike(run, baseline) if baseline else
                                 f"The run finished {steps} steps with nothing out of the ordinary in its log."))
    classes = list(dict.fromkeys(o.kind for o in found))
    if len(classes) > 1 and "departs_from_baseline" in classes:
        classes.remove("departs_from_baseline")  # said in the summary; as a class it only stands alone
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


# torchrun's launcher ends a failed multi-rank run with its own exception, which names no cause:
# the exception a rank raised, printed above it, is the one to quote
LAUNCHER_EXCEPTION = "torch.distributed.elastic.multiprocessing.errors.ChildFailedError"


# torchrun prefixes each line a rank writes with its rank
RANK_PREFIX = re.compile(r"^\[(?:default)?rank(\d+)\]:\s?")


def traceback_origin(stderr, workspace):
    """(exception line, 'file:line in function' of the innermost frame in the workspace); the
    exception a rank raised says which rank."""
    lines, ranks = [], []
    for raw in stderr.splitlines():
        prefix = RANK_PREFIX.match(raw)
        lines.append(raw[prefix.end():] if prefix else raw)
        ranks.append(prefix.group(1) if prefix else None)
    raised = [(line.strip(), rank) for line, rank in zip(lines, ranks) if EXCEPTION_LINE.match(line.strip())]
    causes = [(line, rank) for line, rank in raised if not line.startswith(LAUNCHER_EXCEPTION)]
    exception, rank = (causes or raised or [(None, None)])[-1]
    if exception and rank is not None:
        exception = f"{exception} (in rank {rank})"
    origin = None
    roots = [str(root) for root in (workspace, JAIL_WORKSPACE) if root]
    for line in lines:
        match = TRACE_FRAME.match(line)
        root = next((r for r in roots if match and match.group(1).startswith(r + "/")), None)
        if root:
            path = match.group(1)[len(root):].lstrip("/")
            origin = f"{path}:{match.group(2)} in {match.group(3)}"
    return exception, origin


def ended(run, baseline, tolerance):
    state = run.result.get("state")
    step = last_step(run)
    progress = f"after step {step}" if step else "before the first logged step"
    if completed(run):  # the training itself was done: a rank died at shutdown, or a later stage failed
        progress = f"after its last planned step ({step})"
    last = len(run.stages) - 1
    if last and run.stages[last].continues:  # the result is the last stage's: say which script was running
        progress += f", in {run.stage_name(last)}"
    elif last:  # a stage of its own (an evaluation) has none of the training's steps
        done = "planned steps" if completed(run) else "steps"
        progress = f"in {run.stage_name(last)}" + (f", after stage {last} had run its {step} {done}" if step else "")
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
    text += "."
    if baseline is not None and baseline.result.get("state") == "failed":
        same = traceback_origin(baseline.stderr, baseline.spec.get("workspace"))[0] == exception
        text += " The baseline crashed too" + (", with the same exception." if same else ".")
    elif baseline is not None and baseline.result.get("state") == "finished":
        text += f" The baseline of the same request finished its {last_step(baseline)} steps."
    return [Observation("crashed", text, step)]


# --- the loss curve ----------------------------------------------------------------------

def first_nonfinite_step(series):
    return next((s for s, v in series if not finite(v)), None)


def nonfinite(run, baseline, tolerance):
    series = run.loss_series()
    step = first_nonfinite_step(series)
    records = run.nonfinite
    if step is None and not records:
        return []
    if baseline is not None and same_first_nonfinite(run, baseline):
        return []  # the pristine code goes non-finite at the same place: not this run's doing
    parts = []
    if step is not None:
        value = next(v for s, v in series if s == step)
        finite_before = [v for s, v in series if s < step]
        before = f" (it was {finite_before[-1]:.4f} the step before)" if finite_before else ""
        parts.append(f"Training loss became {value} at step {step}{before}.")
    for record in [r for r in records if r.get("module")][:2]:
        where = f" in {record['module']}" if record.get("module") else ""
        parts.append(f"The first non-finite value in the {record.get('phase', '?')} pass appeared at "
                     f"{run.at_step(stage_of(record), record.get('step'))}{where} ({record.get('tensor', 'tensor')}).")
    return [Observation("nonfinite", " ".join(parts), step)]


def same_first_nonfinite(run, baseline):
    def first(data):
        records = data.nonfinite
        where = (stage_of(records[0]), records[0].get("step"), records[0].get("module")) if records else None
        return first_nonfinite_step(data.loss_series()), where
    return first(run) == first(baseline)


def window_mean(values):
    values = [v for v in values if finite(v)]
    return statistics.fmean(values) if values else float("nan")


def start_and_end(series):
    """Mean loss over the first few and the last tenth of the steps."""
    values = [v for _, v in series]
    k = max(1, len(values) // 10)
    return window_mean(values[:3]), window_mean(values[-k:])


def diverged_or_flat(run, baseline, tolerance):
    found = loss_shape(run, baseline)
    if found and found[0].kind == "diverged" and baseline is not None and loss_shape(baseline, None):
        return []  # the baseline's loss turns up as well: not a difference of this run
    return found


def loss_shape(run, baseline):
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
    if baseline is not None and below_floor(baseline, None, tolerance):
        return []  # the pristine code gets below the floor too: the floor, not this run, is off
    step, value = below[0]
    best = min(v for _, v in points)
    return [Observation("below_entropy_floor", f"Validation reached {value:.4f} bits per byte at step {step}, below the "
                        f"entropy floor of the validation text ({floor:.4f}), and got down to {best:.4f}"
                        + ("; the baseline never goes below the floor." if baseline is not None else "."), step)]


def steps_to_reach(series, value):
    return next((s for s, v in series if finite(v) and v <= value), None)


def final_value(series):
    values = [v for _, v in series if finite(v)]
    return values[-1] if values else None


def keyed(points):
    """{(stage, step): value} of [(stage, step, value)]: the first value where a step repeats."""
    table = {}
    for stage, step, value in points:
        table.setdefault((stage, step), value)
    return table


def main_points(run, points):
    main = run.main_stages()
    return [p for p in points if p[0] in main]


def shared_series(run, baseline, mine, theirs):
    """The two runs' [(step, value)] at the (stage, step)s both have, of the training's own stages:
    a run that went on after the baseline stopped is compared where both have data."""
    mine, theirs = keyed(main_points(run, mine)), keyed(main_points(baseline, theirs))
    shared = sorted(mine.keys() & theirs.keys())
    return [(k[1], mine[k]) for k in shared], [(k[1], theirs[k]) for k in shared]


def relative_change(mine, theirs):
    return mine / theirs - 1 if finite(mine) and finite(theirs) and theirs > 0 else None


def against_baseline_loss(run, baseline, tolerance):
    if baseline is None:
        return []
    val_mine, val_theirs = shared_series(run, baseline, run.val_points(), baseline.val_points())
    train_mine, train_theirs = shared_series(run, baseline, run.loss_points(), baseline.loss_points())
    val_change = relative_change(final_value(val_mine), final_value(val_theirs)) if val_mine else None
    train_change = None
    if len(train_mine) >= 10:
        train_change = relative_change(start_and_end(train_mine)[1], start_and_end(train_theirs)[1])
    change = val_change if val_change is not None else train_change
    if change is None:
        return []
    found = []
    if abs(change) > tolerance:
        kind = "slower_than_baseline" if change > 0 else "better_than_baseline"
        found.append(Observation(kind, loss_comparison(run, baseline, val_mine, val_theirs, train_mine, train_theirs,
                                                       val_change, train_change, tolerance),
                                 (val_mine or train_mine)[-1][0]))
    if val_change is not None:
        found.extend(train_loss_off(run, baseline, val_change, tolerance))
    return found


def loss_comparison(run, baseline, val_mine, val_theirs, train_mine, train_theirs, val_change, train_change,
                    tolerance):
    """Which curve is off, by how much, and where the two runs were compared."""
    val_off = val_change is not None and abs(val_change) > tolerance
    train_off = train_change is not None and abs(train_change) > tolerance
    val_text = train_text = None
    if val_change is not None:
        val_text = (f"validation loss {val_mine[-1][1]:.4f} at step {val_mine[-1][0]} against the baseline's "
                    f"{val_theirs[-1][1]:.4f} ({val_change:+.1%})")
    if train_change is not None:
        mine_end, theirs_end = start_and_end(train_mine)[1], start_and_end(train_theirs)[1]
        train_text = (f"train loss (mean of the last tenth of the steps both ran, to step {train_mine[-1][0]}) "
                      f"{mine_end:.4f} against the baseline's {theirs_end:.4f} ({train_change:+.1%})")
    worse = (val_change if val_change is not None else train_change) > 0
    if val_off and train_off:
        lead = "It learns more slowly than the baseline" if worse else "It ends lower than the baseline"
        text = f"{lead}: {val_text}; {train_text}."
    elif val_off:
        text = (f"Only validation differs from the baseline; the train loss matches it: {val_text}; {train_text}."
                if train_text else f"Its {val_text}.")
    else:  # no validation to compare: the train loss decided
        text = f"Its {train_text}."
    reached = steps_to_reach(val_theirs if val_off else train_theirs,
                             (val_mine if val_off else train_mine)[-1][1]) if worse else None
    last = (val_mine if val_off else train_mine)[-1][0]
    if reached and reached < last:
        text += f" The baseline was already there by step {reached}."
    if last_step(run) != last_step(baseline):
        text += f" (Compared at the steps both runs reached: the run ended at step {last_step(run)}, " \
                f"the baseline at step {last_step(baseline)}.)"
    return text


def train_loss_off(run, baseline, val_change, tolerance):
    """The logged train loss off the baseline's by a steady factor that the validation loss does
    not share (it matches, or is off by far less)."""
    ratios = ratio_series(main_points(run, run.loss_points()), main_points(baseline, baseline.loss_points()))
    if len(ratios) < 5:
        return []
    factor = statistics.median(r for _, r in ratios)
    if 0.9 <= factor <= 1.1:
        return []
    steady = sum(abs(r / factor - 1) < 0.15 for _, r in ratios) >= 0.8 * len(ratios)
    if not steady or abs(math.log(factor)) < 3 * abs(math.log1p(val_change)):
        return []
    val = "matches it" if abs(val_change) <= tolerance else f"is within {abs(val_change):.0%} of it"
    return [Observation("train_loss_off", f"The logged train loss runs at {times(factor)} the baseline's while the "
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
    """Which run stopped early, and where: the run (stopped_early), or the baseline while the run
    trained on past it (did_not_stop_early). Both stopping at the same step is no difference."""
    mine, theirs = early_stop(run), early_stop(baseline) if baseline else None
    if mine and not (theirs and theirs[0] == mine[0]):
        step, planned, note = mine
        text = f"The run stopped early, at step {step} of the {planned} planned" + (f' ("{note}")' if note else "")
        if baseline:
            text += (f"; the baseline stopped early too, at step {theirs[0]}" if theirs
                     else f"; the baseline did not stop early and ran to step {last_step(baseline)}")
        return [Observation("stopped_early", text + ".", step)]
    if theirs and not mine and last_step(run) > theirs[0]:
        step, planned, note = theirs
        ended = (f"trained all {run.log.planned_steps} planned steps" if completed(run)
                 else f"went on to step {last_step(run)}")
        text = (f"The run did not stop early: the baseline stopped early at step {step} of {planned}"
                + (f' ("{note}")' if note else "") + f", while this run {ended}.")
        text += agreement_until(run, baseline, step)
        return [Observation("did_not_stop_early", text, step)]
    return []


def early_stop(run):
    """(last step, planned steps, the script's note) of a run that finished before its planned steps."""
    planned, step = run.log.planned_steps, last_step(run)
    if run.result.get("state") != "finished" or not planned or step >= planned:
        return None
    return step, planned, next((n for n in run.log.notes if "stop" in n.lower()), "")


def agreement_until(run, baseline, step):
    """Whether the two runs' curves matched up to the step where one of them stopped."""
    first = departure_point(run, baseline)
    if first is None:
        return f" Up to step {step} the two runs' loss and validation curves are the same."
    (stage, at), _ = first
    if at <= step:
        return f" Their curves first differ at {run.at_step(stage, at)}."
    return f" Up to step {step} the two runs' loss and validation curves are the same."


# --- where the run leaves its baseline -----------------------------------------------------

DEPART = 1e-3  # relative: same-seed runs match exactly on a CPU; this absorbs a GPU's reordered sums


def aggregate_curves(run):
    """(name, [(stage, step, value)]) of the curves a candidate sees beside the baseline."""
    lrs = [(stage_of(r), r["step"], r["lr"]) for r in run.steps if isinstance(r.get("lr"), list)]
    groups = max((len(v) for _, _, v in lrs), default=0)
    return [("train loss", run.loss_points()), ("validation loss", run.val_points()),
            ("gradient norm", run.probe_points("grad_norm")),
            *((f"learning rate of parameter group {g}" if groups > 1 else "learning rate",
               [(st, s, v[g]) for st, s, v in lrs if g < len(v)]) for g in range(groups))]


def first_difference(mine, theirs):
    mine, theirs = keyed(mine), keyed(theirs)
    for key in sorted(mine.keys() & theirs.keys()):
        a, b = mine[key], theirs[key]
        if finite(a) != finite(b) or (finite(a) and abs(a - b) > DEPART * max(abs(a), abs(b)) + 1e-12):
            return key, (a, b)
    return None


def departure_point(run, baseline):
    """((stage, step), [(curve, mine, theirs)]) where the aggregate curves first leave the baseline's."""
    firsts, theirs_by_name = [], dict(aggregate_curves(baseline))
    for name, mine in aggregate_curves(run):
        found = first_difference(mine, theirs_by_name.get(name, []))
        if found:
            firsts.append((found[0], name, *found[1]))
    if not firsts:
        return None
    key = min(f[0] for f in firsts)
    return key, [(name, a, b) for k, name, a, b in firsts if k == key]


def departs(run, baseline):
    """The step from which the run stops matching its same-seed baseline, said whatever else is
    seen: a change of the initialisation or the data path shows there long before anything else."""
    if baseline is None:
        return None
    first = departure_point(run, baseline)
    if first is None:
        return None
    (stage, step), curves = first
    figures = "; ".join(f"{name} {a:.6g} against {b:.6g}" for name, a, b in curves)
    return Observation("departs_from_baseline", f"Its curves first depart from the same-seed baseline's at "
                       f"{run.at_step(stage, step)}: {figures}.", step)


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


def figures_alike(run, baseline):
    """What a quiet summary says of the figures the script printed besides its curves (an
    evaluation stage's among them), which `metrics` found alike."""
    shared = numeric_metrics(run).keys() & numeric_metrics(baseline).keys()
    if not shared:
        return ""
    stages = f" in its {len(run.stages)} stages" if len(run.stages) > 1 else ""
    return (f" The {len(shared)} other figures it printed{stages} ({', '.join(sorted(shared)[:3])}"
            f"{', ...' if len(shared) > 3 else ''}) are within 5% (or 0.01) of the baseline's.")


def same_training(run, baseline):
    ratios = ratio_series(main_points(run, run.loss_points()), main_points(baseline, baseline.loss_points()))
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
        if finite(a) and finite(b) and abs(a - b) > max(FIGURE_RTOL * abs(b), FIGURE_ATOL):
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
                            f"baseline's {theirs:.0f} MB ({times(mine / theirs, 1)}).")]
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


def first_by_step(series):
    first = {}
    for step, value in series:
        first.setdefault(step, value)
    return first


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
    return [Observation("throughput_drop", f"Steps take {times(mine / theirs, 1)} as long as the baseline's "
                        f"({mine:.0f} ms against {theirs:.0f} ms, median).")]


def times(factor, digits=2):
    """"0.52x", and below 0.01 in scientific notation ("5.2e-4x"), which "0.00x" would hide."""
    if finite(factor) and 0 < abs(factor) < 0.01:
        mantissa, exponent = f"{factor:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}x"
    return f"{factor:.{digits}f}x"


def ratio_series(mine, theirs):
    """[((stage, step), mine / theirs)] at the (stage, step)s both runs have: a later stage with an
    optimizer of its own numbers its steps anew, and is paired with the same stage of the other run."""
    mine, theirs = keyed(mine), keyed(theirs)
    return [(key, v / theirs[key]) for key, v in mine.items()
            if key in theirs and finite(v) and finite(theirs[key]) and theirs[key] > 0]


def grad_norm(run, baseline, tolerance):
    if baseline is None:
        return []
    observations = []
    for stage in range(len(run.stages)):
        for label, mine, theirs in (
            ("logged grad norm", run.logged_points("grad norm"), baseline.logged_points("grad norm")),
            ("gradient norm the optimizer sees", run.probe_points("grad_norm"), baseline.probe_points("grad_norm")),
        ):
            mine = [p for p in mine if p[0] == stage]
            ratios = ratio_series(mine, [p for p in theirs if p[0] == stage])
            if len(ratios) < 5:
                continue
            factor = statistics.median(r for _, r in ratios)
            if not 0.7 <= factor <= 1.4:
                (stage_at, step), _ = ratios[len(ratios) // 2]
                value, expected = keyed(mine)[stage_at, step], keyed(theirs)[stage_at, step]
                observations.append(f"the {label} runs at {times(factor)} the baseline's "
                                    f"({value:.3g} at {run.at_step(stage_at, step)}, baseline {expected:.3g})")
    if not observations:
        return seen_departs(run, baseline)
    text = "; ".join(observations)
    return [Observation("grad_norm_off", text[0].upper() + text[1:] + ".")]


def seen_departs(run, baseline):
    """Steps at which the logged grad norm matches the baseline's but the norm of the gradients
    the optimizer consumes does not."""
    logged_mine, logged_theirs = keyed(run.logged_points("grad norm")), keyed(baseline.logged_points("grad norm"))
    seen_theirs = keyed(baseline.probe_points("grad_norm"))
    steps = [(key, v) for key, v in keyed(run.probe_points("grad_norm")).items()
             if key in logged_mine and key in logged_theirs and key in seen_theirs and finite(v)
             and finite(seen_theirs[key]) and seen_theirs[key] > 0 and logged_theirs[key] > 0
             and abs(logged_mine[key] / logged_theirs[key] - 1) < 0.005 and abs(v / seen_theirs[key] - 1) > 0.1]
    if len(steps) < 2:
        return []
    key, value = steps[0]
    return [Observation("grad_norm_off", f"The gradient norm the optimizer sees departs from the baseline's where the "
                        f"logged grad norm matches it: {value:.3f} against {seen_theirs[key]:.3f} at "
                        f"{run.at_step(*key)} (logged {logged_mine[key]:.3f} in both), at {len(steps)} steps in all.",
                        key[1])]


def lr_schedule(run, baseline, tolerance):
    if baseline is None:
        return []
    mine, theirs = run.logged_points("lr"), keyed(baseline.logged_points("lr"))
    off = [(stage, s, v, theirs[stage, s]) for stage, s, v in mine
           if (stage, s) in theirs and lr_off(v, theirs[stage, s])]
    if off:
        stage, step, value, expected = off[0]
        end_stage, end_step, end_value = mine[-1]
        end_expected = theirs.get((end_stage, end_step), float("nan"))
        return [Observation("lr_schedule_off", f"The logged learning rate departs from the baseline's at "
                            f"{run.at_step(stage, step)} ({value:.2e} against {expected:.2e}); at "
                            f"{run.at_step(end_stage, end_step)} it is {end_value:.2e} against {end_expected:.2e}.",
                            step)]
    return group_lr(run, baseline) or weight_decay(run, baseline)


def lr_off(value, expected):
    return abs(value - expected) > 0.01 * abs(expected) + 1e-12


def group_lr(run, baseline):
    """The rate of every parameter group the optimizer holds: a script logs one (group 0's, or a
    multiplier), so a bug in another group's rate shows only here."""
    theirs = {(stage_of(r), r["step"]): r["lr"] for r in baseline.steps if isinstance(r.get("lr"), list)}
    for record in run.steps:
        mine, expected = record.get("lr"), theirs.get((stage_of(record), record["step"]))
        if not (isinstance(mine, list) and isinstance(expected, list) and len(mine) == len(expected)):
            continue
        groups = [g for g, (a, b) in enumerate(zip(mine, expected)) if finite(a) and finite(b) and lr_off(a, b)]
        if groups:
            g = groups[0]
            named = f"parameter group {g}" + (f" (and {len(groups) - 1} other group(s))" if len(groups) > 1 else "")
            return [Observation("lr_schedule_off", f"The learning rate in the optimizer departs from the baseline's "
                                f"at {run.at_step(stage_of(record), record['step'])} for {named}: {mine[g]:.2e} "
                                f"against {expected[g]:.2e}.", record["step"])]
    return []


def weight_decay(run, baseline):
    theirs = {(stage_of(r), r["step"]): r.get("weight_decay") for r in baseline.steps}
    for record in run.steps:
        mine, expected = record.get("weight_decay"), theirs.get((stage_of(record), record["step"]))
        if isinstance(mine, list) and isinstance(expected, list) and len(mine) == len(expected):
            if any(abs(a - b) > 0.01 * abs(b) + 1e-12 for a, b in zip(mine, expected) if finite(a) and finite(b)):
                return [Observation("weight_decay_off", f"The weight decay in the optimizer departs from the "
                                    f"baseline's at {run.at_step(stage_of(record), record['step'])} ({mine} against "
                                    f"{expected}).", record["step"])]
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
