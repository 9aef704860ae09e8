"""A third codebase, known to bugdrill only through one plugin module: the blob classifier of
tests/fixtures/classifier (not a GPT; its own train.py, flags and log lines) loaded from
tests/fixtures/classifier_codebase.py through BUGDRILL_CODEBASES. Its log is read into the common
telemetry, the doctor describes it, it trains in a production-debugging interview against a
baseline with the probe's telemetry, a code review shows its code, and `bugdrill train --codebase`
trains it; nothing else in bugdrill names it.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from mcp_calls import call, error
from sandbox import codebases
from server.app import build_server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLASSIFIER = FIXTURES / "classifier"
PLUGIN = FIXTURES / "classifier_codebase.py"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def with_plugin(server_state, monkeypatch):
    """The plugin registered for this process and the subprocesses it starts, a state directory of its own."""
    monkeypatch.setenv("BUGDRILL_CODEBASES", str(PLUGIN))
    return server_state


@pytest.fixture
def checkout(tmp_path):
    """A copy of the fixture, as a user's checkout would be: no caches, no runs."""
    copy = tmp_path / "classifier"
    shutil.copytree(CLASSIFIER, copy, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    return copy


def bugdrill(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_its_own_log_lines_are_read_into_the_common_telemetry(checkout, tmp_path):
    run_dir = tmp_path / "run"
    printed = subprocess.run([sys.executable, "-B", "train.py", "--steps=12", "--eval-every=5", "--seed=3"],
                             cwd=checkout, capture_output=True, text=True, timeout=120, check=True,
                             env={**os.environ, "CLASSIFIER_RUN_DIR": str(run_dir), "OMP_NUM_THREADS": "1"}).stdout
    log = codebases.named("classifier").parse_log(printed)

    assert log.planned_steps == 12
    assert [r["step"] for r in log.train] == list(range(1, 13))
    assert all(set(r) == {"step", "loss", "lr", "grad norm"} for r in log.train), log.train[0]
    assert all(isinstance(r[k], float) for r in log.train for k in ("loss", "lr", "grad norm"))
    first = next(line for line in printed.splitlines() if line.startswith("iter 1/12 "))
    assert f"loss={log.train[0]['loss']:.4f}" in first and f"grad_norm={log.train[0]['grad norm']:.3f}" in first
    assert log.train[-1]["loss"] < log.train[0]["loss"]
    assert [e["step"] for e in log.evals] == [5, 10, 12]  # every 5, and after the last step
    assert all(0 < e["val loss"] < 5 and 0 <= e["val acc"] <= 1 for e in log.evals), log.evals
    assert log.summary["val acc"] == log.evals[-1]["val acc"] and log.summary["steps"] == 12
    assert any(note.startswith("data:") for note in log.notes)
    assert (run_dir / "checkpoint.pt").is_file()
    assert not (checkout / "runs").exists()  # the checkpoint went where the environment said


def test_the_doctor_says_what_the_plugin_says(checkout):
    done = bugdrill("doctor", "--codebase", str(checkout))
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first.startswith(f"{checkout}: classifier.")
    assert re.search(r"\b0 of \d+ catalogue bugs apply", first), first
    assert "files in a workspace: 4" in rest
    assert "scenarios: none: every run is the codebase's own training script" in rest
    assert "code-review windows fall in: train.py" in rest
    assert "applies:" not in rest

    without = subprocess.run([sys.executable, "-m", "server.cli", "doctor", "--codebase", str(checkout)], cwd=REPO,
                             capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if k != "BUGDRILL_CODEBASES"})
    assert without.returncode == 1 and "not a checkout bugdrill recognises" in without.stdout


@pytest.mark.anyio
async def test_a_control_interview_trains_it_against_a_baseline_with_telemetry(checkout):
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="production_debugging", codebase=str(checkout),
                             bug="none", seed=2)
        interview = started["interview_id"]
        run = await call(client, "run_training", interview_id=interview, steps=40)
        assert run["state"] == "finished", run
        assert run["symptoms"] == ["no_visible_effect"], run
        assert "match the same-seed baseline's at every step" in run["summary"], run["summary"]

        log = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="log", every=10)
        assert "baseline loss" in log["text"], log["text"]
        assert re.search(r"^\s*40\b", log["text"], re.MULTILINE), log["text"]  # the last step's row
        assert "baseline val loss" in log["text"]
        evals = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="eval")
        assert "val acc: " in evals["text"], evals["text"]  # its own final line, read as a metric
        grads = await call(client, "get_view", interview_id=interview, run_id=run["run_id"], view="grad_norms")
        assert "per parameter" in grads["text"] and "body.0.weight" in grads["text"], grads["text"]

        assert "not accepted" in await error(client, "run_training", interview_id=interview, args=["--depth=3"])
        assert "between" in await error(client, "run_training", interview_id=interview, args=["--lr=5"])

        verified = await call(client, "verify_fix", interview_id=interview)
        assert verified["fixed"], [c for c in verified["checks"] if not c["passed"]]


@pytest.mark.anyio
async def test_no_catalogue_bug_is_put_into_it(checkout):
    async with Client(build_server("interviewer")) as client:
        refused = await error(client, "start_interview", kind="production_debugging", codebase=str(checkout),
                              bug="zero-grad", seed=1)
        assert "does not apply to this classifier checkout" in refused
        drawn = await error(client, "start_interview", kind="code_review", codebase=str(checkout), seed=1)
        assert "applies to this classifier checkout" in drawn


@pytest.mark.anyio
async def test_a_code_review_shows_its_training_script(checkout):
    async with Client(build_server("interviewer")) as client:
        started = await call(client, "start_interview", kind="code_review", codebase=str(checkout), bug="none",
                             seed=0)
        shown = await call(client, "get_snippet", interview_id=started["interview_id"])
    [window] = shown["snippets"]
    assert window["path"] == "train.py"
    lines = (CLASSIFIER / "train.py").read_text().splitlines()
    assert lines[window["first_line"] - 1].strip() in window["code"], window


def test_bugdrill_train_trains_a_copy_against_its_baseline(checkout):
    done = bugdrill("train", "--codebase", str(checkout), "--steps", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^baseline: run \S+ finished", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^incident: The run finished 30 steps", done.stdout, re.MULTILINE), done.stdout
    log, grads = done.stdout.split("--- log ---")[1].split("--- grad_norms ---")
    assert re.search(r"^\s*30\s+\d\.\d{4}", log, re.MULTILINE), log  # its own loss at the last step
    assert "per parameter" in grads and "head.weight" in grads, grads  # the probe's telemetry
