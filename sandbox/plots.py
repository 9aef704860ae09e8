"""PNG plots of a run's curves beside its baseline (matplotlib, Agg: no display needed)."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from sandbox.rundata import finite, stage_of  # noqa: E402

RUN_STYLE = dict(color="tab:red", label="this run", linewidth=1.4)
BASE_STYLE = dict(color="0.45", label="baseline", linewidth=1.2, linestyle="--")


def png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def curve(axis, series, style):
    points = [(s, v) for s, v in series if finite(v)]
    if points:
        axis.plot([s for s, _ in points], [v for _, v in points], **style)


def envelope(axis, runs, getter):
    """The min-max band of pristine runs with other seeds: how far the baseline moves by chance."""
    series = [dict((s, v) for s, v in getter(r) if finite(v)) for r in runs]
    steps = sorted(set.intersection(*(set(d) for d in series))) if series else []
    if steps:
        low = [min(d[s] for d in series) for s in steps]
        high = [max(d[s] for d in series) for s in steps]
        axis.fill_between(steps, low, high, color="0.6", alpha=0.25, linewidth=0,
                          label=f"baseline, {len(runs)} other seeds")


def paired(axes_title, pairs, run, baseline, log_scale=False, band=()):
    """One panel per (title, series getter) with the run, the baseline and its seed band."""
    figure, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.4), squeeze=False)
    for axis, (title, getter) in zip(axes[0], pairs):
        if band:
            envelope(axis, band, getter)
        curve(axis, getter(run), RUN_STYLE)
        if baseline is not None:
            curve(axis, getter(baseline), BASE_STYLE)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
        if log_scale:
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        else:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
    figure.suptitle(axes_title, fontsize=11)
    footnote(figure, run)
    data = png_bytes(figure)
    plt.close(figure)
    return data


def stage_note(run):
    """The curves are the training's own stages; a later stage that counts its own optimizer's steps
    from 1 (the eval script's probe) would be drawn over them, so it is left out, and said so."""
    left_out = [s for s in run.stages if s.index not in run.main_stages()]
    if not left_out:
        return ""
    return (f"{run.stages[0].script}; not drawn: "
            + ", ".join(f"stage {s.index + 1} ({s.script})" for s in left_out) + " (get_view shows it)")


def footnote(figure, run):
    note = stage_note(run)
    if note:
        figure.text(0.5, -0.03, note, ha="center", va="top", fontsize=8)


def logged(key):
    def series(run):
        main = run.main_stages()
        return [(r["step"], r.get(key)) for r in run.log.train if stage_of(r) in main]
    return series


def per_module(title, run, key, field=None):
    main = run.main_stages()
    details = [d for d in run.details if d.get(key) and stage_of(d) in main]
    figure, axis = plt.subplots(figsize=(7, 3.6))
    modules = list(details[-1][key]) if details else []
    for module in modules:
        points = [(d["step"], d[key].get(module)) for d in details]
        if field:
            points = [(s, v.get(field) if isinstance(v, dict) else None) for s, v in points]
        curve(axis, points, dict(label=module, linewidth=1.2))
    axis.set_title(title, fontsize=10)
    footnote(figure, run)
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)
    if modules:
        axis.legend(fontsize=7, ncol=2)
    data = png_bytes(figure)
    plt.close(figure)
    return data


def plot(name, run, baseline, band=()):
    if name == "log":
        return paired("training log", [("loss", lambda r: r.loss_series()), ("learning rate", logged("lr"))],
                      run, baseline, band=band)
    if name == "grad_norms":
        return paired("gradient norm", [("global grad norm (probe)", lambda r: r.probe_series("grad_norm")),
                                        ("grad norm as logged", logged("grad norm"))], run, baseline,
                      log_scale=True, band=band)
    if name == "memory":
        return paired("memory", [("resident MB", lambda r: r.probe_series("rss_mb"))], run, baseline, band=band)
    if name == "throughput":
        return paired("throughput", [("step ms", lambda r: r.probe_series("dt_ms")),
                                     ("tokens/s", lambda r: r.probe_series("tokens_per_s"))], run, baseline,
                      band=band)
    if name == "eval":
        return paired("validation", [("val loss", lambda r: r.val_series()),
                                     ("val bpb", lambda r: r.val_series("val bpb"))], run, baseline, band=band)
    if name == "attention":
        return per_module("attention entropy per layer (nats)", run, "attention", "entropy")
    if name == "activations":
        return per_module("RMS of each block's output", run, "act_rms")
    raise ValueError(name)
