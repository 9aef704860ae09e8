"""Running a bug's behavioural check against a workspace, in a child process with limits."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor


def run_checks(workspace, names, timeout=300, jobs=1):
    """{name: {"passed": bool, "detail": str}} for each check, run in `jobs` child processes."""
    names = list(names)
    chunks = [names[i::jobs] for i in range(max(1, min(jobs, len(names))))]
    results = {}
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        for part in pool.map(lambda chunk: run_in_child(workspace, chunk, timeout), chunks):
            results.update(part)
    return results


def run_in_child(workspace, names, timeout):
    # corpus and checkpoints of the checks go to a scratch directory, not into the workspace
    scratch = tempfile.mkdtemp(prefix="bugdrill-check-")
    env = {**os.environ, "PICOCHAT_BASE_DIR": scratch, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bug_catalog.run_check", *names],
            cwd=workspace, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {name: {"passed": False, "detail": f"the checks took longer than {timeout} s"} for name in names}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.returncode != 0 or not result.stdout.strip():
        detail = f"check process failed: {result.stderr[-600:]}"
        return {name: {"passed": False, "detail": detail} for name in names}
    return json.loads(result.stdout.strip().splitlines()[-1])
