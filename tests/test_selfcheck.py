"""`bugdrill selfcheck --device cpu`: the GPU self-check's plan run on CPU baselines, as a real
subprocess, as CI runs it (a few minutes on 2 cores: short runs, each baseline run once)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.selfcheck import BUG_CHECKS, PRISTINE_STEPS

ROOT = Path(__file__).resolve().parents[1]


def selfcheck(tmp_path, *args, timeout=900):
    env = {**os.environ, "BUGDRILL_STATE_DIR": str(tmp_path / "state"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "server.cli", "selfcheck", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rows_by_check(report):
    return {row["check"]: row for row in report["rows"]}


def test_the_cpu_plan_shows_every_bug_and_passes(tmp_path):
    out = tmp_path / "selfcheck.json"
    result = selfcheck(tmp_path, "--device", "cpu", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = rows_by_check(report)
    assert report["device"] == "cpu" and report["passed"]
    assert rows["pristine tiny"]["verdict"] == "pass" and "bfloat16" in rows["pristine tiny"]["ran"]
    assert rows["fp16_cuda scenario"]["verdict"] == "skipped: CUDA only"
    for check in BUG_CHECKS:
        row = rows[f"bug {check.bug}"]
        expected, shown = set(row["expected"].split(", ")), set(row["shown"].split(", "))
        assert row["verdict"] == "pass" and expected and expected <= shown, row
    assert rows["bug 22 (DDP)"]["verdict"].startswith("skipped")
    assert rows["probe telemetry"]["verdict"] == "pass"
    assert rows["probe telemetry"]["shown"].startswith(f"{PRISTINE_STEPS} step records, {PRISTINE_STEPS} timed")
    assert rows["checkout"]["verdict"].startswith("skipped: no --codebase")
    # the table on stdout holds every row and its verdict
    for row in report["rows"]:
        assert f"| {row['check']} |" in result.stdout and row["verdict"] in result.stdout


def test_too_few_minutes_stops_before_the_runs_and_fails(tmp_path):
    out = tmp_path / "selfcheck.json"
    result = selfcheck(tmp_path, "--device", "cpu", "--minutes", "0.2", "--json", str(out))
    assert result.returncode == 1
    rows = rows_by_check(json.loads(out.read_text()))
    assert rows["pristine tiny"]["verdict"] == "not run: out of time"
    assert all(rows[f"bug {c.bug}"]["verdict"] == "not run: out of time" for c in BUG_CHECKS)
    assert "not run: out of time" in result.stdout
    assert not (tmp_path / "state" / "trainings").exists() or not any((tmp_path / "state" / "trainings").iterdir())


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "--device must be one of cuda, cpu"),
    (["--device", "cpu", "--minutes", "0"], "--minutes must be more than 0"),
    (["--device", "cpu", "--minutes", "nan"], "--minutes must be more than 0"),
    (["--device", "cpu", "--codebase", "/nonexistent/nanochat"], "is not a directory"),
    (["--device", "cpu", "--json", "/tmp"], "is a directory: name the file to write"),
])
def test_bad_input_is_one_clear_line_and_status_2(tmp_path, args, message):
    result = selfcheck(tmp_path, *args, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("bugdrill selfcheck: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
