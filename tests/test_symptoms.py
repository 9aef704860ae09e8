"""Symptoms and views from real runs: bugged workspaces trained under the runner with the probe,
classified against a pristine baseline of the same request."""

import re
from dataclasses import replace

import pytest

from bug_catalog.selection import choose
from sandbox.baselines import baseline
from sandbox.codebases.picochat import PICOCHAT_DIR
from sandbox.logparse import parse_log
from sandbox.symptoms import classify
from sandbox.training import TrainingRequest, train, training_data
from sandbox.views import VIEWS, ViewError, render
from sandbox.workspace import create_workspace

BASE = TrainingRequest(scenario="base", steps=40, args=["--num_samples=0", "--eval_every=20"])
SFT = TrainingRequest(scenario="sft", steps=5)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BUGDRILL_STATE_DIR", str(root))
        yield root


def bugged_run(state, bug, variant, request):
    record, chosen = choose(bug, variant)
    workspace = state / f"ws-{bug}-{variant}"
    create_workspace(workspace, PICOCHAT_DIR, [(record, chosen)])
    run = training_data(train(workspace, request))
    return run, training_data(baseline(PICOCHAT_DIR, request))


@pytest.fixture(scope="module")
def pristine(state):
    return training_data(baseline(PICOCHAT_DIR, BASE))


def test_a_pristine_run_against_its_own_baseline_shows_nothing(state, pristine):
    incident = classify(pristine, pristine)
    assert incident.classes == ["no_visible_effect"], incident.summary
    assert len(pristine.steps) == 40 and pristine.result["state"] == "finished"


def test_gradients_cleared_before_the_step_reads_as_not_learning(state):
    run, base = bugged_run(state, "zero-grad", 2, BASE)
    incident = classify(run, base)
    assert "not_learning" in incident.classes, incident.summary
    assert "slower_than_baseline" not in incident.classes  # adds nothing to a stall
    assert "zero_grad" not in incident.summary and "optimizer" not in incident.summary


def test_a_schedule_bug_shows_in_the_lr_column(state):
    run, base = bugged_run(state, "lr-not-decayed", 1, BASE)
    incident = classify(run, base)
    assert "lr_schedule_off" in incident.classes, incident.summary


def test_a_clip_the_optimizer_never_sees_shows_in_the_norm_it_sees(state):
    run, base = bugged_run(state, "clip-after-step", 1, BASE)
    incident = classify(run, base)
    assert "grad_norm_off" in incident.classes, incident.summary
    assert "logged grad norm matches" in incident.summary and "clip" not in incident.summary


def test_a_logged_loss_the_validation_does_not_share_reads_as_train_loss_off(state):
    accumulated = TrainingRequest(scenario="base", steps=20, args=["--total_batch_size=2048", "--num_samples=0",
                                                                   "--eval_every=10"])
    run, base = bugged_run(state, "grad-accum-unscaled", 1, accumulated)
    incident = classify(run, base)
    assert "train_loss_off" in incident.classes, incident.summary
    # a crash only after the last planned step (a rank dying at shutdown) keeps the comparisons
    crashed = replace(run, result={**run.result, "state": "failed", "message": "exited with status 1"})
    after = classify(crashed, base)
    assert {"crashed", "train_loss_off"} <= set(after.classes)
    assert f"crashed after its last planned step ({run.log.planned_steps})" in after.summary, after.summary


def test_a_nan_names_its_step_and_the_first_module(state):
    run, base = bugged_run(state, "rmsnorm-no-eps", 1, SFT)
    incident = classify(run, base)
    assert "nonfinite" in incident.classes, incident.summary
    assert "step 1" in incident.summary
    first = run.nonfinite[0]
    assert first["phase"] == "forward" and first["module"] and first["step"] == 1, first
    assert first["module"] in incident.summary


def test_a_crash_quotes_the_exception_and_where_it_was_raised(state):
    run, base = bugged_run(state, "no-padding", 1, SFT)
    incident = classify(run, base)
    assert incident.classes[0] == "crashed", incident.summary
    assert "Error" in incident.summary and ".py:" in incident.summary


def test_a_two_rank_crash_quotes_the_rank_that_failed_and_what_the_baseline_did(state):
    """torchrun's own ChildFailedError comes last in stderr and says nothing of the cause: the
    summary quotes the exception a rank raised, and says how the same request's baseline ended."""
    run, base = bugged_run(state, "corpus-barrier-missing", 1, TrainingRequest(scenario="ddp", steps=2))
    incident = classify(run, base)
    assert incident.classes[0] == "crashed", incident.summary
    assert "FileNotFoundError" in incident.summary and "ChildFailedError" not in incident.summary, incident.summary
    assert "The baseline of the same request finished its 2 steps." in incident.summary, incident.summary


def test_views_say_what_their_figures_are_and_print_them_as_such(pristine):
    """Found by an LLM candidate: timings and norms of unlike kinds side by side with no word on
    which is which, whole numbers and megabytes with four decimals."""
    throughput = render("throughput", pristine, pristine).text
    assert "as the probe timed it on rank 0" in throughput and "timed in another run" in throughput
    grads = render("grad_norms", pristine, pristine).text
    assert "before they are averaged across ranks" in grads and "after any clipping" in grads
    memory = render("memory", pristine, pristine).text.splitlines()
    assert re.fullmatch(r"\s*1\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d\s+-\s+-", memory[1]), memory[:2]
    summary = next(line for line in render("eval", pristine, pristine).text.splitlines() if "summary |" in line)
    assert "summary | steps: 40 (baseline 40)" in summary and re.search(r"time: [\d.]+ s \(baseline [\d.]+ s\)", summary)


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_every_view_renders_as_text(pristine, name):
    view = render(name, pristine, pristine)
    assert view.text.strip()


@pytest.mark.parametrize("name", ["log", "grad_norms", "attention", "memory"])
def test_curves_render_as_png(pristine, name):
    png = render(name, pristine, pristine, image=True).png
    assert png.startswith(b"\x89PNG")


def test_log_view_puts_the_baseline_beside_the_run(pristine):
    text = render("log", pristine, pristine).text
    assert "baseline loss" in text.splitlines()[0]
    assert f"{pristine.log.train[-1]['loss']:.4f}" in text


def test_unknown_view_and_unplottable_view_are_clear_errors(pristine):
    with pytest.raises(ViewError, match="unknown view"):
        render("weights", pristine)
    with pytest.raises(ViewError, match="no plot"):
        render("stderr", pristine, image=True)


def test_log_lines_parse_into_figures():
    log = parse_log(
        "config: {'a': 1}\n"
        "step 00010/00100 (10.00%) | loss: 2.9000 | lr: 3.00e-03 | grad norm: 0.7300 | dt: 31ms | tok/sec: 33,000\n"
        "step 00025 | val loss: 2.8000 | val bpb: 1.6000 | entropy floor bpb: 0.3110\n"
        "sample 0: 'once upon a time'\n"
        "early stopping at step 30: no val improvement in 5 evals\n"
        "summary | steps: 30 | val loss: 2.8000\n")
    assert log.train == [{"step": 10, "loss": 2.9, "lr": 0.003, "grad norm": 0.73, "dt": 0.031, "tok/sec": 33000.0}]
    assert log.evals[0]["entropy floor bpb"] == 0.311 and log.planned_steps == 100
    assert log.samples == ["once upon a time"] and log.summary["steps"] == 30
    assert log.notes == ["early stopping at step 30: no val improvement in 5 evals"]
