"""README's main job: `bugdrill demo` plays a production-debugging interview over MCP, end to end."""

import os
import subprocess
import sys


def test_the_demo_plays_a_whole_interview(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "server.cli", "demo", "--seed", "7", "--state", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for step in ("connected to `bugdrill serve` over stdio", "Here is the incident.", "baseline loss",
                 "global gradient norm", "verify_fix()", "Fixed: the checks pass.", "reveal()", "verdict: fixed"):
        assert step in out, f"missing {step!r} in the transcript:\n{out[-3000:]}"
