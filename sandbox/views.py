"""Views of a run for the interviewer to hand out: compact text, and a PNG where a curve says more.

Each view answers one request a candidate makes ("show me the gradient norms"). Aggregate
curves (loss, validation, lr, global grad norm, memory, throughput) come beside the
baseline's; per-layer views (grad norm per parameter, attention, activations) show the run
alone, since a per-module diff against a same-seed baseline would point at the answer.
"""

import math
from dataclasses import dataclass

from sandbox.rundata import RunData, finite, stage_of
from sandbox.shown_paths import for_candidate, run_places, workspace_places

VIEWS = {
    "log": "loss and learning rate every k steps, validation lines, beside the baseline",
    "grad_norms": "global gradient norm beside the baseline; per-layer norms and update/weight ratios",
    "attention": "attention entropy and largest pre-softmax logit per layer",
    "activations": "RMS of each block's output",
    "memory": "resident and peak memory per step beside the baseline",
    "throughput": "step time and tokens per second beside the baseline",
    "eval": "validation loss, bits per byte against the entropy floor, and the script's metrics",
    "samples": "text the model generated",
    "stdout": "the script's own printed output, stage by stage: the last lines (tail=), optionally only those "
              "containing a text (grep=, case-insensitive)",
    "stderr": "the last lines of stderr (tail=, grep= as for stdout)",
    "nonfinite": "where the first NaN/Inf appeared",
}
EVAL_WORDS = ("bpb", "accuracy", "loss", "parse", "recall")
BANDED = {"log", "grad_norms", "memory", "throughput", "eval"}  # aggregate curves; per-layer ones show the run alone
PLOTTED = {"log", "grad_norms", "attention", "activations", "memory", "throughput", "eval"}


class ViewError(ValueError):
    pass


@dataclass
class View:
    name: str
    text: str
    png: bytes | None = None


def fmt(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, float) and 1e4 <= abs(value) < 1e9:
        return f"{value:,.0f}"
    if isinstance(value, float) and (abs(value) >= 1e9 or 0 < abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(header, rows):
    rows = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def every_k(items, k, also=()):
    """Every k-th item by step, plus the last, so the end of a run is always shown, and the steps
    in `also` (where the run departs from its baseline, which the incident summary names)."""
    if not items:
        return []
    picked = [item for item in items if item[0] % k == 0 or item[0] == 1 or item[0] in also]
    if picked[-1:] != items[-1:]:
        picked.append(items[-1])
    return picked


def departure_steps(run, baseline, stage):
    """The step of this stage at which the run's aggregate curves first leave the baseline's, as a
    tuple (empty when they never do, or do in another stage)."""
    from sandbox.symptoms import departure_point

    found = departure_point(run, baseline) if baseline is not None else None
    return (found[0][1],) if found and found[0][0] == stage else ()


def choose_k(n, rows=25):
    return max(1, math.ceil(n / rows))


# --- stages: a table per stage, against the same stage of the baseline ------------------------

def stage_heading(run, stage, compared=True):
    """What a stage's rows are: a stage with an optimizer of its own counts its steps from 1 again."""
    info = run.stages[stage]
    if stage > 0 and not info.continues:
        counted = "steps of its own optimizer, counted from 1"
    elif info.continues:
        counted = "steps continue the previous stage's count"
    else:
        counted = "training steps"
    beside = f"; beside stage {stage + 1} of the baseline" if compared else ""
    return f"== stage {stage + 1} of {len(run.stages)}: {info.script} ({counted}{beside}) =="


def by_stage(run, build):
    """build(stage) -> text or None for each stage; one stage: its text alone, as it always was."""
    if len(run.stages) < 2:
        return build(0)
    parts = [f"{stage_heading(run, stage)}\n{text}" for stage in range(len(run.stages)) if (text := build(stage))]
    return "\n\n".join(parts) or None


def base_records(baseline, kind, stage):
    """{step: record} of the baseline's stage `stage` (empty when it has no such stage)."""
    if baseline is None:
        return {}
    if kind == "train":
        return {r["step"]: r for r in baseline.log.train if stage_of(r) == stage}
    if kind == "evals":
        return {r["step"]: r for r in baseline.log.evals if stage_of(r) == stage}
    return {r["step"]: r for r in baseline.stage_steps(stage)}


def missing_note(run, baseline, stage, base_steps, shown_steps):
    """Why a baseline column shows '-': it has no figure at that step, most often because one of
    the two runs ended sooner (early stopping, a crash)."""
    absent = [s for s in shown_steps if s not in base_steps]
    if not absent or baseline is None:
        return ""
    if not base_steps:
        return f"\n-: the baseline has no such figures{' in this stage' if len(run.stages) > 1 else ''}."
    last = max(base_steps)
    if min(absent) > last:
        why = stop_note(baseline)
        return (f"\n-: the baseline has no figure after step {last}: it ended there"
                + (f' ("{why}")' if why else "") + f"; this run went on to step {max(shown_steps)}.")
    return "\n-: the baseline has no figure at that step."


def stop_note(run):
    return next((n for n in run.log.notes if "stop" in n.lower()), "")


# --- the views -----------------------------------------------------------------------------

def log_view(run, baseline, every):
    parts = [by_stage(run, lambda stage: stage_log(run, baseline, stage, every))]
    if run.log.evals:
        parts.append(eval_table(run, baseline))
    parts += [n for n in run.log.notes][:10]
    return "\n\n".join(p for p in parts if p) or "The run printed no step lines."


def stage_log(run, baseline, stage, every):
    train = {r["step"]: r for r in run.log.train if stage_of(r) == stage}
    base = base_records(baseline, "train", stage)
    lr, base_lr = probe_lrs(run, stage), probe_lrs(baseline, stage) if baseline else {}
    groups = lr_groups_differing(lr, base_lr)
    if not train:  # a script that prints nothing we can read: the probe's figures
        return probe_log(run, baseline, stage, every, lr, base_lr, groups)
    steps = [s for s, _ in every_k([(s, None) for s in sorted(train)], every or choose_k(len(train)),
                                   departure_steps(run, baseline, stage))]
    # a script that logs no lr (nanochat prints a multiplier): the probe's, first parameter group
    rows = [[s, train[s].get("loss"), base.get(s, {}).get("loss"), train[s].get("lr", group_lr(lr, s, 0)),
             base.get(s, {}).get("lr", group_lr(base_lr, s, 0)), *group_columns(lr, base_lr, s, groups)]
            for s in steps]
    header = ["step", "loss", "baseline loss", "lr", "baseline lr", *group_header(groups)]
    return table(header, rows) + group_note(groups) + missing_note(run, baseline, stage, base, steps)


def probe_log(run, baseline, stage, every, lr, base_lr, groups):
    mine = [(r["step"], r) for r in run.stage_steps(stage)]
    if not mine:
        return None
    base = base_records(baseline, "steps", stage)
    picked = every_k(mine, every or choose_k(len(mine)), departure_steps(run, baseline, stage))
    rows = [[s, r.get("loss"), base.get(s, {}).get("loss"), group_lr(lr, s, 0), group_lr(base_lr, s, 0),
             *group_columns(lr, base_lr, s, groups)] for s, r in picked]
    header = ["step", "loss (probe)", "baseline loss (probe)", "lr (probe)", "baseline lr (probe)",
              *group_header(groups)]
    return table(header, rows) + group_note(groups) + missing_note(run, baseline, stage, base, [s for s, _ in picked])


def probe_lrs(run, stage):
    """{step: [lr of each parameter group]} as the optimizer held them."""
    return {r["step"]: r["lr"] for r in run.stage_steps(stage) if isinstance(r.get("lr"), list) and r["lr"]}


def group_lr(lrs, step, group):
    values = lrs.get(step) or []
    return values[group] if group < len(values) else None


def lr_groups_differing(lr, base_lr):
    """Parameter groups (after the first, which the lr column shows) whose lr differs from the
    baseline's at some shared step: a bug in one group's rate is invisible in group 0's."""
    shared = lr.keys() & base_lr.keys()
    count = max((len(v) for v in lr.values()), default=0)
    return [g for g in range(1, count)
            if any(differs(group_lr(lr, s, g), group_lr(base_lr, s, g)) for s in shared)]


def differs(a, b, rel=1e-6):
    if a is None or b is None:
        return a is not b
    return abs(a - b) > rel * max(abs(a), abs(b)) + 1e-15


def group_columns(lr, base_lr, step, groups):
    return [x for g in groups for x in (group_lr(lr, step, g), group_lr(base_lr, step, g))]


def group_header(groups):
    return [x for g in groups for x in (f"lr group {g}", f"baseline lr group {g}")]


def group_note(groups):
    if not groups:
        return ""
    return ("\nlr group k: the rate of the optimizer's parameter group k (the probe's), shown for every group "
            "whose rate differs from the baseline's; lr is what the script logged (group 0).")


def eval_table(run, baseline):
    return by_stage(run, lambda stage: stage_eval_table(run, baseline, stage))


def stage_eval_table(run, baseline, stage):
    evals = [r for r in run.log.evals if stage_of(r) == stage]
    if not evals:
        return None
    base = base_records(baseline, "evals", stage)
    keys = [k for k in ("val loss", "val loss (assistant tokens)", "val bpb", "answer accuracy", "entropy floor bpb")
            if any(k in r for r in evals)]
    header = ["step"] + [x for k in keys for x in ((k, f"baseline {k}") if k != "entropy floor bpb" else (k,))]
    rows = []
    for r in evals:
        row = [r["step"]]
        for k in keys:
            row.append(r.get(k))
            if k != "entropy floor bpb":
                row.append(base.get(r["step"], {}).get(k))
        rows.append(row)
    return table(header, rows) + missing_note(run, baseline, stage, base, [r["step"] for r in evals])


def grad_view(run, baseline, every):
    text = by_stage(run, lambda stage: stage_grads(run, baseline, stage, every))
    return text or "No gradient telemetry was recorded (the probe saw no optimizer step)."


def stage_grads(run, baseline, stage, every):
    parts = []
    base = base_records(baseline, "steps", stage)
    logged = {r["step"]: r.get("grad norm") for r in run.log.train if stage_of(r) == stage}
    steps = [(r["step"], r) for r in run.stage_steps(stage)]
    if steps:
        picked = every_k(steps, every or choose_k(len(steps)), departure_steps(run, baseline, stage))
        rows = [[s, r.get("grad_norm", None) if r.get("grad_norm") is not None else "none",
                 base.get(s, {}).get("grad_norm"), r.get("grad_norm_backward"), logged.get(s)] for s, r in picked]
        parts.append("global gradient norm: at step, as the optimizer saw it (after any clipping; none: no "
                     "parameter had a gradient); after backward, before clipping (under DDP this rank's own "
                     "gradients, before they are averaged across ranks); logged, as the script printed it\n"
                     + table(["step", "at step", "baseline", "after backward", "logged"], rows)
                     + missing_note(run, baseline, stage, base, [s for s, _ in picked])
                     + ("\nlogged -: the script printed no grad norm for that step."
                        if any(row[-1] is None for row in rows) else ""))
    details = run.records("detail", stage=stage)
    if details:
        last = details[-1]
        names = list(last.get("update_ratio") or last.get("grad_norm") or {})
        rows = [[name, last.get("grad_norm", {}).get(name, "none"), last.get("update_ratio", {}).get(name),
                 last.get("param_norm", {}).get(name)] for name in names]
        parts.append(f"per parameter at step {last['step']} (grad norm when the optimizer stepped; this run alone)\n"
                     + table(["parameter", "grad norm", "update/weight", "weight norm"], rows))
        parts.append(zero_gradients(details, baseline.records("detail", stage=stage) if baseline else None))
    return "\n\n".join(p for p in parts if p) or None


def zero_names(details):
    return {n for d in details for n, v in (d.get("grad_norm") or {}).items() if finite(v) and v == 0.0}


def zero_gradients(details, base_details):
    """Parameters whose gradient was exactly zero: a finding only where the baseline's was not
    (a codebase that zero-initialises its output projections shows them in every run)."""
    zero = zero_names(details)
    if base_details is None:
        return ("parameters whose gradient was exactly zero at a sampled step: " + ", ".join(sorted(zero)[:12])
                if zero else "")
    shared = zero & zero_names(base_details)
    new = sorted(zero - shared)
    lines = []
    if new:
        lines.append("parameters whose gradient was exactly zero at a sampled step, where the baseline's was not: "
                     + ", ".join(new[:12]) + (f" and {len(new) - 12} more" if len(new) > 12 else ""))
    if shared:
        lines.append(f"{len(shared)} parameter(s) had an exactly zero gradient at a sampled step in the baseline "
                     "as well (not a difference of this run)")
    return "\n".join(lines)


def per_module_view(run, key, fields, title):
    text = by_stage(run, lambda stage: stage_modules(run, stage, key, fields, title))
    return text or f"No {title} were recorded (the probe saw no matching module in a training forward pass)."


def stage_modules(run, stage, key, fields, title):
    details = [d for d in run.records("detail", stage=stage) if d.get(key)]
    if not details:
        return None
    modules = list(details[-1][key])
    header = ["step"] + [f"{m} {f}" if f else m for m in modules for f in fields]
    rows = []
    for d in details:
        row = [d["step"]]
        for m in modules:
            value = d[key].get(m)
            row += [value.get(f) if isinstance(value, dict) else None for f in fields] if fields[0] else [value]
        rows.append(row)
    return title + " (this run alone)\n" + table(header, rows)


def memory_view(run, baseline, every):
    text = by_stage(run, lambda stage: stage_memory(run, baseline, stage, every))
    if not text:
        return "No memory telemetry was recorded."
    peak = run.result.get("peak_memory_mb")
    base_peak = baseline.result.get("peak_memory_mb") if baseline else None
    if finite(peak):
        text += f"\npeak memory of the whole run (all processes): {peak:.0f} MB"
        text += f" (baseline: {base_peak:.0f} MB)" if finite(base_peak) else ""
    return text


def stage_memory(run, baseline, stage, every):
    mine = run.stage_steps(stage)
    if not mine:
        return None
    base = base_records(baseline, "steps", stage)
    picked = every_k([(r["step"], r) for r in mine], every or choose_k(len(mine)))
    rows = [[s, *(mb(v) for v in (r.get("rss_mb"), base.get(s, {}).get("rss_mb"), r.get("peak_rss_mb"),
                                   r.get("cuda_mem_mb"), r.get("cuda_peak_mb")))] for s, r in picked]
    return (table(["step", "rss MB", "baseline rss MB", "peak rss MB", "cuda MB", "cuda peak MB"], rows)
            + missing_note(run, baseline, stage, base, [s for s, _ in picked]))


def mb(value):
    return f"{value:.1f}" if finite(value) else value


def throughput_view(run, baseline, every):
    text = by_stage(run, lambda stage: stage_throughput(run, baseline, stage, every))
    return text or "No throughput telemetry was recorded."


def stage_throughput(run, baseline, stage, every):
    mine = run.stage_steps(stage)
    if not mine:
        return None
    base = base_records(baseline, "steps", stage)
    picked = every_k([(r["step"], r) for r in mine], every or choose_k(len(mine)))
    rows = [[s, r.get("dt_ms"), base.get(s, {}).get("dt_ms"), r.get("tokens_per_s"),
             base.get(s, {}).get("tokens_per_s")] for s, r in picked]
    return (THROUGHPUT_HEAD + table(["step", "step ms", "baseline ms", "tokens/s", "baseline tokens/s"], rows)
            + missing_note(run, baseline, stage, base, [s for s, _ in picked]))


# what the probe times, which is not what a script's own dt and tok/sec count, and why a baseline's
# times are not a like-for-like comparison
THROUGHPUT_HEAD = ("step ms: from the step's first training forward to the end of optimizer.step(), as the probe "
                   "timed it on rank 0; tokens/s: the tokens of rank 0's own training forwards in that time (a "
                   "script's printed dt and tok/sec come from its own clock and may count every rank). The "
                   "baseline was timed in another run, at another time, under whatever else the machine was "
                   "doing: compare its times for an order of magnitude, not a few percent.\n")


def eval_view(run, baseline, every):
    parts = [eval_table(run, baseline)] if run.log.evals else []
    theirs = figure_lines(baseline) if baseline else {}
    for head, fields in figure_lines(run).items():
        base = theirs.get(head, {})
        parts.append(printed_by(run, head, fields) + f"{'' if head == 'fields' else head + ' | '}"
                     + " | ".join(f"{k}: {printed(v)}{unit(run, k)}"
                                  + (f" (baseline {printed(base[k])}{unit(baseline, k)})" if k in base else "")
                                  for k, v in fields.items()))
    if baseline and any(theirs.values()) and not any(k in theirs for k in figure_lines(run)):
        parts.append("(the baseline printed no such lines)")
    return "\n\n".join(p for p in parts if p) or "The run printed no validation or evaluation lines."


def unit(run, key):
    """The unit the script printed a figure with (" s", "%"), or nothing."""
    found = run.log.units.get(key, "")
    return f" {found}" if found == "s" else found


def printed(value):
    """A figure a script printed; a whole number as one (steps: 100, not 100.0000)."""
    whole = isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e15
    return str(int(value)) if whole else fmt(value)


def printed_by(run, head, fields):
    """"[stage 2 of 2: scripts/base_eval.py] " where more than one stage could have printed the line."""
    if len(run.stages) < 2:
        return ""
    start = f"{head} |" if head != "fields" else f"{next(iter(fields))}:"
    stage = next((st for st in reversed(run.stages) if any(line.strip().startswith(start)
                                                             for line in st.stdout.splitlines())), None)
    return f"[stage {stage.index + 1} of {len(run.stages)}: {stage.script}] " if stage else ""


def figure_lines(run):
    """{head: {name: value}} of the script's evaluation lines and its summary."""
    lines = {}
    for head, fields in run.log.other.items():
        if head == "fields":  # lines of figures with no head: keep the evaluation's, not the config's
            fields = {k: v for k, v in fields.items() if any(w in k for w in EVAL_WORDS)}
        elif not head.startswith("probe"):
            continue
        if fields:
            lines[head] = fields
    if run.log.summary:
        lines["summary"] = run.log.summary
    return lines


def samples_view(run, baseline, every):
    if not run.log.samples:
        return "The run printed no samples."
    lines = [f"sample {i}: {text!r}" for i, text in enumerate(run.log.samples)]
    lines.append(f"stories the corpus grammar parses: {parsed(run.log.samples)} of {len(run.log.samples)}"
                 + (f" (baseline: {parsed(baseline.log.samples)} of {len(baseline.log.samples)})"
                    if baseline and baseline.log.samples else ""))
    return "\n".join(lines)


def parsed(samples):
    """How many samples are whole stories of the built-in corpus's grammar: a quality measure that
    does not depend on the model (the grammar is read from the pristine template, never a workspace)."""
    grammar = corpus_grammar()
    return sum(grammar.count_derivations(text.strip()) > 0 for text in samples)


def corpus_grammar():
    """The built-in codebase's story grammar (sandbox/codebases): the corpus every offline run's
    data is written from."""
    from sandbox.codebases import builtin

    return builtin().story_grammar()


def as_shown(run, text):
    """A process's output with its paths as the candidate knows them (sandbox/shown_paths.py)."""
    return for_candidate(text, run_places(run.run_dir, run.spec) if run.spec.get("workspace") else
                         workspace_places(None))


def stderr_view(run, baseline, every, tail=None, grep=None):
    return line_view(as_shown(run, run.stderr), "stderr", tail or every, grep)


def stdout_view(run, baseline, every, tail=None, grep=None):
    """The script's own printed output, stage by stage: what a person sees in their terminal."""
    if len(run.stages) < 2:
        return line_view(as_shown(run, run.stdout), "stdout", tail or every, grep)
    lines = []
    for stage in range(len(run.stages)):
        lines.append(stage_heading(run, stage, compared=False))
        lines += as_shown(run, run.stages[stage].stdout).splitlines()
    return line_view("\n".join(lines), "stdout", tail or every, grep, keep=HEADING)


HEADING = "== stage "


def matches(line, grep):
    """A plain case-insensitive substring: no pattern language, so no pattern can be slow."""
    return not grep or grep.lower() in line.lower()


def line_view(text, name, tail=None, grep=None, keep=None):
    """The last `tail` lines (default 40) that contain `grep`; `keep`: lines that start with it
    (stage headings) are kept above the lines shown, and not counted."""
    tail = tail or 40
    lines = [line for line in text.splitlines() if matches(line, grep) or (keep and line.startswith(keep))]
    content = {i for i, line in enumerate(lines) if not (keep and line.startswith(keep))}
    if not content:
        return f"{name} has no line containing {grep!r}." if grep else f"{name} is empty."
    shown = set(sorted(content)[-tail:])
    kept, heading = [], None
    for i, line in enumerate(lines):
        if i not in content:
            heading = line  # shown only above a line of its own that is shown
        elif i in shown:
            kept += [heading] if heading else []
            kept.append(line)
            heading = None
    what = f"lines containing {grep!r}" if grep else "lines"
    head = (f"(the last {len(shown)} of {len(content)} {what}; tail= shows more)\n"
            if len(shown) < len(content) else "")
    return head + "\n".join(kept)


def nonfinite_view(run, baseline, every):
    records = run.nonfinite
    if not records:
        text = "The probe saw no NaN or Inf in the forward pass, the gradients or the loss."
    else:
        text = "\n".join(f"{run.at_step(stage_of(r), r.get('step'))}: {r.get('phase')} pass, "
                         f"{r.get('module') or 'loss'} ({r.get('tensor')}): {r.get('message', '')}" for r in records)
    if baseline is not None:
        theirs = baseline.nonfinite
        text += ("\nThe baseline had none." if not theirs else
                 f"\nThe baseline too: its first at {baseline.at_step(stage_of(theirs[0]), theirs[0].get('step'))}.")
    return text


TEXT_VIEWS = {
    "log": log_view,
    "grad_norms": grad_view,
    "attention": lambda run, base, every: per_module_view(run, "attention", ("entropy", "max_logit"),
                                                           "attention entropy (nats) and max pre-softmax logit per layer"),
    "activations": lambda run, base, every: per_module_view(run, "act_rms", (None,), "RMS of each block's output"),
    "memory": memory_view,
    "throughput": throughput_view,
    "eval": eval_view,
    "samples": samples_view,
    "stderr": stderr_view,
    "stdout": stdout_view,
    "nonfinite": nonfinite_view,
}
LINE_VIEWS = {"stdout", "stderr"}  # the views that take tail= and grep=


def render(name, run: RunData, baseline: RunData | None = None, every=None, image=False, band=(),
           tail=None, grep=None) -> View:
    """`band`: pristine runs with other seeds, drawn as a shaded band behind aggregate curves.
    `tail`, `grep`: the last lines, and only those containing a text, of the stdout and stderr views."""
    if name not in TEXT_VIEWS:
        raise ViewError(f"unknown view {name!r}; views: {', '.join(VIEWS)}")
    if name in LINE_VIEWS:
        text = TEXT_VIEWS[name](run, baseline, every, tail=tail, grep=grep)
    elif tail is not None or grep:
        raise ViewError(f"tail and grep apply to the {' and '.join(sorted(LINE_VIEWS))} views, not {name}")
    else:
        text = TEXT_VIEWS[name](run, baseline, every)
    text = as_shown(run, text)  # the line views are shown so before grep; any other view's text here
    png = None
    if image:
        if name not in PLOTTED:
            raise ViewError(f"the {name} view has no plot; plots: {', '.join(sorted(PLOTTED))}")
        from sandbox.plots import plot  # matplotlib is imported only when a plot is asked for
        png = plot(name, run, baseline, band)
    return View(name, text, png)

