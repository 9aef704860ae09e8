"""Running a bug's behavioural check against a workspace, in a child process with limits."""

import json
import os
import shutil
import subprocess
import sys
import tempfile


def run_checks(workspace, names, timeout=300):
    """{name: {"passed": bool, "detail": str}} for each check, run in one child process."""
    # corpus and checkpoints of the checks go to a scratch directory, not into the workspace
    scratch = tempfile.mkdtemp(prefix="bugdrill-check-")
    env = {**os.environ, "PICOCHAT_BASE_DIR": scratch, "OMP_NUM_THREADS": "1"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bug_catalog.run_check", *names],
            cwd=workspace, env=env, capture_output=True, text=True, timeout=timeout,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0 or not result.stdout.strip():
        detail = f"check process failed: {result.stderr[-600:]}"
        return {name: {"passed": False, "detail": detail} for name in names}
    return json.loads(result.stdout.strip().splitlines()[-1])
