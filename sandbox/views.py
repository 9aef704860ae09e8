"""Views of a run for the interviewer to hand out: compact text, and a PNG where a curve says more.

Each view answers one request a candidate makes ("show me the gradient norms"). Aggregate
curves (loss, validation, lr, global grad norm, memory, throughput) come beside the
baseline's; per-layer views (grad norm per parameter, attention, activations) show the run
alone, since a per-module diff against a same-seed baseline would point at the answer.
"""

import functools
import importlib.util
import math
from dataclasses import dataclass

from sandbox.codebase import PICOCHAT_DIR
from sandbox.rundata import RunData, finite

VIEWS = {
    "log": "loss and learning rate every k steps, validation lines, beside the baseline",
    "grad_norms": "global gradient norm beside the baseline; per-layer norms and update/weight ratios",
    "attention": "attention entropy and largest pre-softmax logit per layer",
    "activations": "RMS of each block's output",
    "memory": "resident and peak memory per step beside the baseline",
    "throughput": "step time and tokens per second beside the baseline",
    "eval": "validation loss, bits per byte against the entropy floor, and the script's metrics",
    "samples": "text the model generated",
    "stderr": "the last lines of stderr",
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


def every_k(items, k):
    """Every k-th item by step, plus the last, so the end of a run is always shown."""
    if not items:
        return []
    picked = [item for item in items if item[0] % k == 0 or item[0] == 1]
    if picked[-1:] != items[-1:]:
        picked.append(items[-1])
    return picked


def choose_k(n, rows=25):
    return max(1, math.ceil(n / rows))


# --- the views -----------------------------------------------------------------------------

def log_view(run, baseline, every):
    train = {r["step"]: r for r in run.log.train}
    base = {r["step"]: r for r in baseline.log.train} if baseline else {}
    steps = sorted(train)
    k = every or choose_k(len(steps))
    # a script that logs no lr (nanochat prints a multiplier): the probe's, first parameter group
    lr, base_lr = probe_lr(run), probe_lr(baseline) if baseline else {}
    rows = [[s, train[s].get("loss"), base.get(s, {}).get("loss"), train[s].get("lr", lr.get(s)),
             base.get(s, {}).get("lr", base_lr.get(s))]
            for s, _ in every_k([(s, None) for s in steps], k)]
    parts = [table(["step", "loss", "baseline loss", "lr", "baseline lr"], rows)] if rows else []
    if not rows and run.steps:  # a script that prints nothing we can read: the probe's figures
        probe = [(r["step"], r) for r in run.steps]
        parts.append(table(["step", "loss (probe)", "lr (probe)"],
                           [[s, r.get("loss"), (r.get("lr") or [None])[0]] for s, r in every_k(probe, choose_k(len(probe)))]))
    if run.log.evals:
        parts.append(eval_table(run, baseline))
    parts += [n for n in run.log.notes][:10]
    return "\n\n".join(parts) or "The run printed no step lines."


def probe_lr(run):
    return {r["step"]: r["lr"][0] for r in run.steps if r.get("lr")}


def eval_table(run, baseline):
    base = {r["step"]: r for r in baseline.log.evals} if baseline else {}
    keys = [k for k in ("val loss", "val loss (assistant tokens)", "val bpb", "answer accuracy", "entropy floor bpb")
            if any(k in r for r in run.log.evals)]
    header = ["step"] + [x for k in keys for x in ((k, f"baseline {k}") if k != "entropy floor bpb" else (k,))]
    rows = []
    for r in run.log.evals:
        row = [r["step"]]
        for k in keys:
            row.append(r.get(k))
            if k != "entropy floor bpb":
                row.append(base.get(r["step"], {}).get(k))
        rows.append(row)
    return table(header, rows)


def grad_view(run, baseline, every):
    parts = []
    theirs = {r["step"]: r.get("grad_norm") for r in baseline.steps} if baseline else {}
    logged = {r["step"]: r.get("grad norm") for r in run.log.train}
    steps = [(r["step"], r) for r in run.steps]
    if steps:
        rows = [[s, r.get("grad_norm", None) if r.get("grad_norm") is not None else "none", theirs.get(s),
                 r.get("grad_norm_backward"), logged.get(s)] for s, r in every_k(steps, every or choose_k(len(steps)))]
        parts.append("global gradient norm: when the optimizer stepped (none: no parameter had a gradient), "
                     "after backward, and as the script logged it\n"
                     + table(["step", "at step", "baseline", "after backward", "logged"], rows))
    details = run.details
    if details:
        last = details[-1]
        names = list(last.get("update_ratio") or last.get("grad_norm") or {})
        rows = [[name, last.get("grad_norm", {}).get(name, "none"), last.get("update_ratio", {}).get(name),
                 last.get("param_norm", {}).get(name)] for name in names]
        parts.append(f"per parameter at step {last['step']} (grad norm when the optimizer stepped)\n"
                     + table(["parameter", "grad norm", "update/weight", "weight norm"], rows))
        zero = sorted({n for d in details for n, v in (d.get("grad_norm") or {}).items() if finite(v) and v == 0.0})
        if zero:
            parts.append("parameters whose gradient was exactly zero at a sampled step: " + ", ".join(zero[:12]))
    return "\n\n".join(parts) or "No gradient telemetry was recorded (the probe saw no optimizer step)."


def per_module_view(run, key, fields, title):
    details = [d for d in run.details if d.get(key)]
    if not details:
        return f"No {title} were recorded (the probe saw no matching module in a training forward pass)."
    modules = list(details[-1][key])
    header = ["step"] + [f"{m} {f}" if f else m for m in modules for f in fields]
    rows = []
    for d in details:
        row = [d["step"]]
        for m in modules:
            value = d[key].get(m)
            row += [value.get(f) if isinstance(value, dict) else None for f in fields] if fields[0] else [value]
        rows.append(row)
    return title + "\n" + table(header, rows)


def memory_view(run, baseline, every):
    mine = run.steps
    theirs = {r["step"]: r for r in baseline.steps} if baseline else {}
    if not mine:
        return "No memory telemetry was recorded."
    picked = every_k([(r["step"], r) for r in mine], every or choose_k(len(mine)))
    rows = [[s, *(mb(v) for v in (r.get("rss_mb"), theirs.get(s, {}).get("rss_mb"), r.get("peak_rss_mb"),
                                   r.get("cuda_mem_mb"), r.get("cuda_peak_mb")))] for s, r in picked]
    peak = run.result.get("peak_memory_mb")
    tail = f"\npeak memory of the whole run (all processes): {peak:.0f} MB" if finite(peak) else ""
    return table(["step", "rss MB", "baseline rss MB", "peak rss MB", "cuda MB", "cuda peak MB"], rows) + tail


def mb(value):
    return round(value, 1) if finite(value) else value


def throughput_view(run, baseline, every):
    mine = run.steps
    theirs = {r["step"]: r for r in baseline.steps} if baseline else {}
    if not mine:
        return "No throughput telemetry was recorded."
    picked = every_k([(r["step"], r) for r in mine], every or choose_k(len(mine)))
    rows = [[s, r.get("dt_ms"), theirs.get(s, {}).get("dt_ms"), r.get("tokens_per_s"),
             theirs.get(s, {}).get("tokens_per_s")] for s, r in picked]
    return table(["step", "step ms", "baseline ms", "tokens/s", "baseline tokens/s"], rows)


def eval_view(run, baseline, every):
    parts = [eval_table(run, baseline)] if run.log.evals else []
    for head, fields in run.log.other.items():
        if head == "fields":  # lines of figures with no head: keep the evaluation's, not the config's
            fields = {k: v for k, v in fields.items() if any(w in k for w in EVAL_WORDS)}
        elif not head.startswith("probe"):
            continue
        if fields:
            parts.append(f"{'' if head == 'fields' else head + ' | '}"
                         + " | ".join(f"{k}: {fmt(v)}" for k, v in fields.items()))
    if run.log.summary:
        parts.append("summary | " + " | ".join(f"{k}: {fmt(v)}" for k, v in run.log.summary.items()))
    return "\n\n".join(parts) or "The run printed no validation or evaluation lines."


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


@functools.lru_cache(maxsize=1)
def corpus_grammar():
    spec = importlib.util.spec_from_file_location("bugdrill_corpus_grammar", PICOCHAT_DIR / "picochat" / "dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stderr_view(run, baseline, every):
    lines = run.stderr.splitlines()
    tail = lines[-(every or 40):]
    return "\n".join(tail) if tail else "stderr is empty."


def nonfinite_view(run, baseline, every):
    records = run.nonfinite
    if not records:
        return "The probe saw no NaN or Inf in the forward pass, the gradients or the loss."
    return "\n".join(f"step {r.get('step')}: {r.get('phase')} pass, {r.get('module') or 'loss'} "
                     f"({r.get('tensor')}): {r.get('message', '')}" for r in records)


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
    "nonfinite": nonfinite_view,
}


def render(name, run: RunData, baseline: RunData | None = None, every=None, image=False, band=()) -> View:
    """`band`: pristine runs with other seeds, drawn as a shaded band behind aggregate curves."""
    if name not in TEXT_VIEWS:
        raise ViewError(f"unknown view {name!r}; views: {', '.join(VIEWS)}")
    text = TEXT_VIEWS[name](run, baseline, every)
    png = None
    if image:
        if name not in PLOTTED:
            raise ViewError(f"the {name} view has no plot; plots: {', '.join(sorted(PLOTTED))}")
        from sandbox.plots import plot  # matplotlib is imported only when a plot is asked for
        png = plot(name, run, baseline, band)
    return View(name, text, png)

