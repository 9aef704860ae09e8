"""README's main job: `bugdrill demo` plays a production-debugging interview over MCP, end to end."""

import os
import re
import subprocess
import sys


def test_the_demo_plays_a_whole_interview(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "server.cli", "demo", "--seed", "7", "--state", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for step in ("connected to `bugdrill serve` over stdio", "Here is the incident.", "baseline loss",
                 "global gradient norm", "verify_fix()", "Fixed: the workspace is the pristine code, byte for byte", "reveal()", "verdict: fixed"):
        assert step in out, f"missing {step!r} in the transcript:\n{out[-3000:]}"
    # stdout is a pipe here: run progress is a plain line per change, never a repeated one
    progress = [line for line in out.splitlines() if re.search(r": step \d+ of \d+$", line)]
    assert progress and len(progress) == len(set(progress)), progress
    assert "the demo's seed 7 drew" in out and "--seed=42 is the training seed" in out
    assert "from the bugged file to the fixed one" in out and "from the pristine file to the bugged one" in out
    assert re.search(r"bugs by status: \d+ not started, 1 fixed\n", out) and "{" not in out.split("end_interview()")[1]
