"""Evidence an expert trusts (issue 16, items 1-5 and 12): views and incident summaries of runs
whose stages, lengths and curves are built here, on disk, as the runner leaves them, and read
back through training_data like any run; one short real run of a two-stage bug at the end."""

import dataclasses
import json
import math
import re

import pytest
from mcp import Client

from sandbox.state import state_dir
from sandbox.symptoms import classify
from sandbox.training import Training, TrainingRequest, save, training_data
from sandbox.views import render

PLANNED = 40


@pytest.fixture(autouse=True)
def state(server_state):
    return server_state


# --- runs on disk, as the runner leaves them ------------------------------------------------

def step_record(step, loss, grad_norm=0.5, lr=(3e-3,), zero=()):
    return {"type": "step", "step": step, "loss": loss, "lr": list(lr), "weight_decay": [0.1] * len(lr),
            "grad_norm": grad_norm, "grad_norm_backward": grad_norm, "dt_ms": 30.0, "tokens_per_s": 3e4,
            "rss_mb": 300.0}


def detail_record(step, zero=()):
    norms = {"wte.weight": 0.3, "lm_head.weight": 0.4, **{name: 0.0 for name in zero}}
    return {"type": "detail", "step": step, "grad_norm": norms, "update_ratio": {n: 1e-3 for n in norms},
            "param_norm": {n: 5.0 for n in norms}}


def train_stage(losses, val=None, grad_norms=None, lrs=None, zero=(), stop_note=None, planned=PLANNED):
    """A scripts.base_train stage: its printed log and the probe's records, one step per loss."""
    lines, records = ["config: {'preset': 'tiny'}"], []
    for step, loss in enumerate(losses, start=1):
        grad = grad_norms[step - 1] if grad_norms else 0.5
        lr = lrs[step - 1] if lrs else (3e-3,)
        lines.append(f"step {step:05d}/{planned:05d} ({100 * step / planned:.2f}%) | loss: {loss:.4f} | "
                     f"lr: {lr[0]:.2e} | grad norm: {grad:.4f} | dt: 30ms")
        records.append(step_record(step, loss, grad, lr))
        if step <= 5 or step % 10 == 0:
            records.append(detail_record(step, zero))
        if val and step in val:
            lines.append(f"step {step:05d} | val loss: {val[step]:.4f} | val bpb: {val[step] / 1.7:.4f} | "
                         "entropy floor bpb: 0.3110")
    if stop_note:
        lines.append(stop_note)
    lines.append(f"summary | steps: {len(losses)} | final train loss: {losses[-1]:.4f}")
    return "scripts.base_train", lines, records


def probe_stage(grad_norms, metrics):
    """A scripts.base_eval stage: no step lines; its classification probe's optimizer counts from 1."""
    lines = ["val bpb: 2.6602 | entropy floor bpb: 0.3110 | next-token accuracy: 0.1608",
             "probe test | " + " | ".join(f"{k}: {v:.4f}" for k, v in metrics.items()),
             f"summary | val bpb: 2.6602 | probe balanced accuracy: {metrics['balanced_accuracy']:.4f}"]
    records = [step_record(step, 0.5, grad) for step, grad in enumerate(grad_norms, start=1)]
    return "scripts.base_eval", lines, records


def write_training(name, *stages, state="finished"):
    run_ids = []
    for index, (module, lines, records) in enumerate(stages):
        run_id = f"{name}-{index}"
        directory = state_dir() / "runs" / run_id
        (directory / "telemetry").mkdir(parents=True)
        (directory / "spec.json").write_text(json.dumps({"workspace": "/ws", "argv": ["-m", module, "--preset=tiny"]}))
        (directory / "result.json").write_text(json.dumps({"state": state, "message": ""}))
        (directory / "stdout.log").write_text("\n".join(lines) + "\n")
        (directory / "stderr.log").write_text("")
        meta = {"type": "meta", "rank": 0}
        (directory / "telemetry" / "rank0.jsonl").write_text("\n".join(json.dumps(r) for r in [meta, *records]) + "\n")
        run_ids.append(run_id)
    training = Training(id=name, workspace="/ws", request=TrainingRequest(), stages=run_ids, state=state)
    save(training)
    return training


def falling(n, start=6.0, rate=0.05, scale=1.0):
    return [scale * (start * math.exp(-rate * k) + 1.0) for k in range(n)]


def rows_of(text, heading):
    """{step: [cells]} of the table under the line that contains `heading` (up to a blank line)."""
    block = text.split(heading, 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells[1:]
    return rows


# --- item 1: runs of more than one stage ----------------------------------------------------

def two_stage(name, probe_scale):
    train = train_stage(falling(20), grad_norms=[1.0 + k / 10 for k in range(20)])
    probe = probe_stage([probe_scale * (0.04 + k / 1000) for k in range(400)],
                        {"accuracy": 0.81, "balanced_accuracy": 0.68})
    return training_data(write_training(name, train, probe))


def test_each_stage_is_compared_with_the_same_stage_of_the_baseline():
    base, run = two_stage("base-2stage", 1.0), two_stage("run-2stage", 0.02)
    text = render("grad_norms", run, base).text
    assert "stage 1 of 2: scripts/base_train.py" in text and "stage 2 of 2: scripts/base_eval.py" in text, text
    training_rows = rows_of(text, "stage 1 of 2")
    probe_rows = rows_of(text, "stage 2 of 2")
    # the training's step 1 beside the baseline training's step 1, and as the training logged it
    assert training_rows[1][1] == "1.0000" and training_rows[1][3] == "1.0000", training_rows[1]
    # the probe's step 1 beside the baseline probe's step 1, and nothing logged by the training
    assert probe_rows[1][1] == "0.0400" and probe_rows[1][3] == "-", probe_rows[1]
    for name in ("log", "memory", "throughput"):
        shown = render(name, run, base).text
        assert shown.count("== stage ") == 2 and "scripts/base_eval.py" in shown, (name, shown)


def test_a_summary_names_the_stage_whose_optimizer_it_describes():
    base, run = two_stage("base-named", 1.0), two_stage("run-named", 0.02)
    summary = classify(run, base).summary
    assert "grad_norm_off" in classify(run, base).classes, summary
    step = re.search(r"at step (\d+) of the optimizer in scripts/base_eval\.py \(stage 2 of 2\)", summary)
    assert step, summary


def test_a_quiet_summary_says_the_later_stages_figures_were_compared():
    """Found by an LLM candidate: "Nothing stands out" named the training's curves only, and the
    bug had lived in the evaluation stage."""
    base = two_stage("base-quiet", 1.0)
    summary = classify(base, base).summary
    assert "The 4 other figures it printed in its 2 stages (next-token accuracy, probe balanced accuracy, " \
           "probe test accuracy, ...) are within 5% (or 0.01) of the baseline's." in summary, summary


def test_a_crash_in_a_later_stage_is_not_put_after_that_stages_steps():
    """Found by an LLM candidate: "crashed after its last planned step (100), in stage 2 of 2" put
    the training stage's steps on an evaluation stage that has none."""
    base = two_stage("base-crash", 1.0)
    crashed = dataclasses.replace(base, result={**base.result, "state": "failed", "message": "exited with status 1"})
    summary = classify(crashed, base).summary
    assert "The run crashed in stage 2 of 2 (scripts/base_eval.py), after stage 1 had run its 20 steps " \
           "(exited with status 1)." in summary, summary


# --- item 2: runs of different length ---------------------------------------------------------

def overfitting(n):
    """Val loss bottoms at step 10 and rises after: patience stops a run at step 20."""
    return {s: 3.0 + 0.02 * abs(s - 10) for s in range(0, n + 1, 5)}


def test_a_baseline_that_stopped_early_is_said_so_and_compared_where_both_ran():
    losses, val = falling(PLANNED), overfitting(PLANNED)
    base = training_data(write_training("base-early", train_stage(
        losses[:20], {s: v for s, v in val.items() if s <= 20},
        stop_note="early stopping at step 20: no val improvement in 2 evals")))
    run = training_data(write_training("run-late", train_stage(losses, val)))
    incident = classify(run, base)
    assert "did_not_stop_early" in incident.classes, incident.summary
    assert "slower_than_baseline" not in incident.classes, incident.summary
    assert "baseline stopped early at step 20" in incident.summary, incident.summary
    assert "Up to step 20 the two runs' loss and validation curves are the same" in incident.summary
    assert "already there" not in incident.summary
    log = render("log", run, base).text
    assert "-: the baseline has no figure after step 20: it ended there" in log, log
    assert "early stopping at step 20" in log


def test_a_run_that_stopped_early_where_the_baseline_did_not_is_said_so():
    losses, val = falling(PLANNED), overfitting(PLANNED)
    base = training_data(write_training("base-full", train_stage(losses, val)))
    run = training_data(write_training("run-stopped", train_stage(
        losses[:20], {s: v for s, v in val.items() if s <= 20},
        stop_note="early stopping at step 20: no val improvement in 2 evals")))
    incident = classify(run, base)
    assert "stopped_early" in incident.classes and "did_not_stop_early" not in incident.classes
    assert f"the baseline did not stop early and ran to step {PLANNED}" in incident.summary, incident.summary


# --- item 3: a departure from the baseline is always said ----------------------------------------

def test_curves_that_depart_at_step_one_are_not_nothing():
    base = training_data(write_training("base-depart", train_stage(falling(30), overfitting(30))))
    # 0.5 % off from the first step: under the comparisons' noise tolerance, but not the same run
    run = training_data(write_training("run-depart", train_stage(falling(30, scale=1.005), overfitting(30))))
    incident = classify(run, base)
    assert "Nothing stands out" not in incident.summary
    assert "first depart from the same-seed baseline's at step 1: train loss" in incident.summary, incident.summary
    assert incident.classes == ["departs_from_baseline"], incident.classes
    same = classify(base, base)
    assert same.classes == ["no_visible_effect"] and "depart" not in same.summary


# --- item 4: which curve, and ratios that keep their magnitude -----------------------------------

def test_only_validation_differing_is_not_called_learning_more_slowly():
    losses = falling(PLANNED)
    base = training_data(write_training("base-val", train_stage(losses, overfitting(PLANNED))))
    worse = {s: v * 1.2 for s, v in overfitting(PLANNED).items()}
    run = training_data(write_training("run-val", train_stage(losses, worse)))
    summary = classify(run, base).summary
    assert "learns more slowly" not in summary, summary
    assert "Only validation differs from the baseline; the train loss matches it" in summary, summary


def test_a_tiny_ratio_is_written_in_scientific_notation():
    losses = falling(PLANNED)
    base = training_data(write_training("base-ratio", train_stage(losses, grad_norms=[1.0] * PLANNED)))
    run = training_data(write_training("run-ratio", train_stage(losses, grad_norms=[5e-4] * PLANNED)))
    summary = classify(run, base).summary
    assert "0.00x" not in summary and "5e-4x the baseline's" in summary, summary


# --- item 5: views that carry what the question needs --------------------------------------------

def test_the_log_view_shows_a_parameter_group_whose_lr_differs():
    losses = falling(20)
    base = training_data(write_training("base-groups", train_stage(losses, lrs=[(3e-3, 3e-3)] * 20)))
    run = training_data(write_training("run-groups", train_stage(losses, lrs=[(3e-3, 3e-2)] * 20)))
    text = render("log", run, base).text
    header = text.splitlines()[0].split("  ")
    assert "lr group 1" in [h.strip() for h in header] and "baseline lr group 1" in [h.strip() for h in header], text
    first = text.splitlines()[1].split()
    assert first[-2:] == ["0.0300", "0.0030"], text
    assert "lr_schedule_off" in classify(run, base).classes


def test_the_eval_view_puts_the_baseline_beside_the_scripts_metrics():
    base, run = two_stage("base-eval", 1.0), two_stage("run-eval", 1.0)
    run.log.other["probe test"] = {"accuracy": 0.5, "balanced_accuracy": 0.5}
    text = render("eval", run, base).text
    assert "probe test | accuracy: 0.5000 (baseline 0.8100)" in text, text
    assert "[stage 2 of 2: scripts/base_eval.py]" in text


def test_the_stdout_view_shows_the_last_lines_and_filters_them():
    base = two_stage("base-stdout", 1.0)
    every = render("stdout", base, base).text
    assert "== stage 2 of 2: scripts/base_eval.py" in every and "probe test | accuracy" in every
    tail = render("stdout", base, base, tail=3).text.splitlines()
    assert tail[0].startswith("(the last 3 of") and tail[-1].startswith("summary | val bpb")
    found = render("stdout", base, base, grep="PROBE TEST").text.splitlines()
    assert found == ["== stage 2 of 2: scripts/base_eval.py (steps of its own optimizer, counted from 1) ==",
                     "probe test | accuracy: 0.8100 | balanced_accuracy: 0.6800"], found
    assert "no line containing" in render("stdout", base, base, grep="(?:a+)+$").text


@pytest.mark.anyio
async def test_get_view_takes_tail_and_grep_and_says_per_layer_views_are_run_only(state):
    from server.app import build_server

    from mcp_calls import call, error

    server = build_server("interviewer")
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        view = tools["get_view"]
        assert {"tail", "grep"} <= set(view.input_schema["properties"]), view.input_schema
        assert "this run alone" in view.description, view.description
        interview = (await call(client, "start_interview", kind="production_debugging", bug="zero-grad",
                                variant=2, seed=3))["interview_id"]
        base, run = write_training("base-mcp", *stages_of(1.0)), write_training("run-mcp", *stages_of(1.0))
        server.bugdrill.interviews.record(interview, "run", {"training": run.id, "baseline": base.id,
                                                             "state": "finished", "request": {}, "summary": ""})
        shown = await call(client, "get_view", interview_id=interview, run_id=run.id, view="stdout",
                           grep="probe", tail=5)
        assert "probe test | accuracy" in shown["text"] and "config:" not in shown["text"], shown
        refused = await error(client, "get_view", interview_id=interview, run_id=run.id, view="log", tail=5)
        assert "tail and grep apply to the stderr and stdout views, not log" in refused


def stages_of(probe_scale):
    return (train_stage(falling(20)), probe_stage([probe_scale * 0.04] * 50, {"accuracy": 0.81,
                                                                             "balanced_accuracy": 0.68}))


# --- item 12: what the baseline shows too is not a finding ---------------------------------------

def test_zero_gradients_the_baseline_shares_are_not_listed_as_findings():
    zeroed = ("blocks.0.attn.c_proj.weight", "blocks.0.mlp.c_proj.weight")
    base = training_data(write_training("base-zero", train_stage(falling(20), zero=zeroed)))
    run = training_data(write_training("run-zero", train_stage(falling(20), zero=zeroed)))
    text = render("grad_norms", run, base).text
    assert "parameters whose gradient was exactly zero at a sampled step" not in text, text
    assert "2 parameter(s) had an exactly zero gradient at a sampled step in the baseline as well" in text
    frozen = training_data(write_training("run-frozen", train_stage(falling(20), zero=(*zeroed, "wte.weight"))))
    text = render("grad_norms", frozen, base).text
    assert "where the baseline's was not: wte.weight\n" in text + "\n", text


def test_a_divergence_the_baseline_shares_is_not_a_symptom():
    rising = falling(30)[:10] + [3.0 + 0.5 * k for k in range(20)]
    base = training_data(write_training("base-diverges", train_stage(rising)))
    run = training_data(write_training("run-diverges", train_stage(rising)))
    assert classify(run, base).classes == ["no_visible_effect"], classify(run, base).summary
    assert "diverged" in classify(run, None).classes


# --- one real run: a bug that shows in the second stage of the eval scenario --------------------

def test_a_real_two_stage_run_is_shown_and_summarised_stage_by_stage(state, tmp_path):
    from bug_catalog.selection import choose
    from sandbox.baselines import baseline
    from sandbox.codebases.picochat import PICOCHAT_DIR
    from sandbox.training import train
    from sandbox.workspace import create_workspace

    request = TrainingRequest(scenario="eval", steps=10, args=["--eval_every=5"])
    record, variant = choose(53, 2)  # nll-on-logits
    create_workspace(tmp_path / "ws", PICOCHAT_DIR, [(record, variant)])
    run = training_data(train(tmp_path / "ws", request))
    base = training_data(baseline(PICOCHAT_DIR, request))
    assert [s.script for s in run.stages] == ["scripts/base_train.py", "scripts/base_eval.py"]
    text = render("grad_norms", run, base).text
    training_rows = rows_of(text, "stage 1 of 2: scripts/base_train.py")
    probe_rows = rows_of(text, "stage 2 of 2: scripts/base_eval.py")
    # the training is the pristine training (the bug is in the probe): each row beside its own baseline
    assert all(cells[0] == cells[1] for cells in training_rows.values()), text
    assert len(probe_rows) > 2 and any(cells[0] != cells[1] for cells in probe_rows.values()), text
    incident = classify(run, base)
    assert "metrics_differ" in incident.classes, incident.summary
    # a step past the training's 10 can only be the probe's, and must say so
    for mention in re.finditer(r"step (\d+)( of the optimizer in scripts/base_eval\.py)?", incident.summary):
        assert int(mention[1]) <= 10 or mention[2], incident.summary
