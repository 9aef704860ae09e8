"""The command line as a new user meets it: help that imports neither torch nor libcst and says
which commands take --json, `train` showing the command it runs and choosing its threads, `bugs`
with a header and honest category filters, run progress drawn once (a bar on a terminal, a line
per change elsewhere), and the README saying what `inject` prints."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server import cli
from server.progress_display import RunProgress

REPO = Path(__file__).resolve().parents[1]

EVERY_HELP = """
import contextlib, io, json, sys
from server.cli import build_parser

parser = build_parser()
commands = list(parser._subparsers._group_actions[0].choices)
for name in commands:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        parser.parse_args([name, "--help"])
print(json.dumps({"commands": commands, "imported": [m for m in ("torch", "libcst") if m in sys.modules]}))
"""


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `bugdrill ARGV` run in this process."""
    with pytest.raises(SystemExit) as exited:
        cli.main(list(argv))
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_help_of_every_command_imports_neither_torch_nor_libcst():
    result = subprocess.run([sys.executable, "-c", EVERY_HELP], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"train", "bugs", "serve", "demo", "eval"} <= set(report["commands"])
    assert report["imported"] == []


def test_help_names_exactly_the_commands_that_take_json():
    parser = cli.build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    with_flag = {name for name, sub in subparsers.items()
                 if any("--json" in a.option_strings and a.nargs == 0 for a in sub._actions)}
    assert {"train", "serve", "demo"}.isdisjoint(with_flag)
    named = parser.description.split("take --json (machine-readable output): ")[1].split(";")[0].split(", ")
    assert set(named) == with_flag
    assert "Every command" not in cli.__doc__


def test_train_echoes_the_command_it_runs_and_passes_threads(tmp_path, capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(cli.subprocess, "run",
                        lambda command, cwd, env: ran.append((command, env)) or subprocess.CompletedProcess(command, 0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    status, _, err = run_cli(capsys, "train", "--steps", "3", "--workspace", str(tmp_path / "a"))
    assert status == 0
    assert "$ python -m scripts.base_train --preset=tiny --num_iterations=3\n" in err
    command, env = ran[-1]
    assert command == [sys.executable, "-m", "scripts.base_train", "--preset=tiny", "--num_iterations=3"]
    assert "OMP_NUM_THREADS" not in env  # the script's own default: one thread

    status, _, err = run_cli(capsys, "train", "--steps", "3", "--threads", "2", "--workspace", str(tmp_path / "b"))
    assert "$ OMP_NUM_THREADS=2 python -m scripts.base_train --preset=tiny --num_iterations=3\n" in err
    assert ran[-1][1]["OMP_NUM_THREADS"] == "2"


def test_the_practice_script_runs_one_cpu_thread_unless_asked_and_says_so(tmp_path):
    from sandbox.codebase import copy_codebase
    from sandbox.codebases.picochat import PICOCHAT_DIR

    workdir = copy_codebase(PICOCHAT_DIR, tmp_path / "picochat")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PICOCHAT_BASE_DIR"] = str(tmp_path / "data")
    flags = ["--preset=tiny", "--num_iterations=1", "--num_stories=60", "--vocab_size=300", "--eval_every=1",
             "--eval_batches=1", "--num_samples=0", "--device=cpu"]
    result = subprocess.run([sys.executable, "-m", "scripts.base_train", *flags], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "device: cpu | cpu threads: 1 |" in result.stdout


def test_bugs_has_a_header_and_family_categories(capsys):
    status, out, _ = run_cli(capsys, "bugs", "--category", "training")
    assert status == 0
    header, first = out.splitlines()[:2]
    assert header.split() == ["id", "priority", "difficulty", "category", "title"]
    assert first.split()[:2] == ["1", "P1"]

    _, out, _ = run_cli(capsys, "bugs", "--category", "training", "--json")
    assert {bug["category"] for bug in json.loads(out)} == {"training", "training (distributed)"}
    _, out, _ = run_cli(capsys, "bugs", "--category", "training (distributed)", "--json")
    assert {bug["category"] for bug in json.loads(out)} == {"training (distributed)"}


def test_an_unknown_category_is_refused_with_the_categories(capsys):
    status, out, err = run_cli(capsys, "bugs", "--category", "nonsense")
    assert status == 2 and out == ""
    assert "no category 'nonsense'" in err and "architecture" in err and "training (distributed)" in err


def test_run_progress_off_a_terminal_is_a_line_per_tenth_of_a_stage():
    stream = io.StringIO()  # not a terminal
    with RunProgress(stream) as progress:
        progress.update(0, None, "baseline: starting")
        for stage in ("baseline", "training"):
            for step in range(1, 101):
                for _ in range(3):  # notifications repeat
                    progress.update(step, 100, f"{stage}: step {step} of 100")
    lines = stream.getvalue().splitlines()
    expected = ["baseline: starting"] + [f"{stage}: step {step} of 100"
                                         for stage in ("baseline", "training") for step in (1, *range(10, 101, 10))]
    assert lines == ["    " + line for line in expected]


def test_run_progress_on_a_terminal_is_one_bar():
    pytest.importorskip("rich")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with RunProgress(stream) as progress:
        for step in range(1, 101):
            progress.update(step, 100, f"baseline (pristine code): step {step} of 100")
    drawn = stream.getvalue()
    assert "baseline (pristine code): step 100 of 100" in drawn
    assert drawn.count("\n") <= 1, "a bar redrawn in place, not a line per report"


def test_the_readme_says_what_inject_prints(tmp_path, capsys, server_state):
    status, out, _ = run_cli(capsys, "inject", "1", "--workspace", str(tmp_path / "drill"), "--seed", "7")
    assert status == 0 and out.startswith("workspace ready: ")
    readme = (REPO / "README.md").read_text()
    inject_line = next(line for line in readme.splitlines() if line.startswith("bugdrill inject random"))
    assert "workspace ready: PATH" in inject_line
