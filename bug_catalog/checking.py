"""Running a bug's behavioural check against a workspace, in a child process with limits and,
where the machine allows, in the jail of sandbox/jail.py (the checks import the candidate's
code). The verdict is read here, in a process that never ran workspace code, from the one
report line the child writes (see bug_catalog/run_check.py)."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox import codebases, jail

FRAMEWORK = Path(__file__).resolve().parent  # the bug_catalog package
# bug_catalog.run_check, started with the framework first on sys.path (the child runs with -I)
BOOT = "import runpy, sys; sys.path.insert(0, sys.argv[1]); runpy.run_module('bug_catalog.run_check', run_name='__main__')"


def run_checks(workspace, names, timeout=300, jobs=1):
    """{name: {"passed": bool, "detail": str}} for each check, run in `jobs` child processes."""
    names = list(names)
    chunks = [names[i::jobs] for i in range(max(1, min(jobs, len(names))))]
    results = {}
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        for part in pool.map(lambda chunk: run_in_child(workspace, chunk, timeout), chunks):
            results.update(part)
    return results


def _libraries(names):
    """The packages a check process needs: the framework; a target codebase's checks (named
    `codebase/...`) make their data with that codebase's module under sandbox/ (no episode of
    the built-in codebase runs them, so its template is no answer there)."""
    found = [FRAMEWORK]
    if any("/" in name for name in names):
        found.append(FRAMEWORK.parent / "sandbox")
    return found


def data_envs():
    """The environment variables through which the codebases' scripts find their data directory."""
    return sorted({c.data_env for c in codebases.registered() if c.data_env})


def child_command(workspace, scratch, names, arguments, readable=()):
    """(argv, env, translate) of a check child working in `workspace`, in the jail where the
    machine allows: `arguments` follow the framework's directory; `translate` gives a host path's
    place as the child sees it. Corpus and checkpoints of the checks go to `scratch`, not into the
    workspace."""
    env = {**{name: scratch for name in data_envs()}, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": os.environ.get("PATH", ""), "LANG": os.environ.get("LANG", "C.UTF-8")}
    libraries = [str(p) for p in _libraries(names)]
    if not jail.isolating(jail.mode()):
        return [sys.executable, "-I", "-c", BOOT, str(FRAMEWORK.parent), *arguments], env, str
    plan = jail.Plan(workspace, writable=[scratch], readable=list(readable), libraries=libraries)
    argv, env = jail.jailed_argv(plan, [sys.executable, "-I", "-c", BOOT, jail.LIBRARIES, *arguments], env)
    return argv, env, plan.translate


def run_in_child(workspace, names, timeout):
    scratch = tempfile.mkdtemp(prefix="bugdrill-check-")
    nonce = secrets.token_hex(16)
    workspace = str(Path(workspace).resolve())
    argv, env, _ = child_command(workspace, scratch, names, [workspace, *names])
    try:
        result = subprocess.run(argv, cwd=workspace, env=env, input=nonce + "\n", capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        return {name: {"passed": False, "detail": f"the checks took longer than {timeout} s"} for name in names}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return read_report(result, nonce, names)


def run_checks_each(jobs, timeout=300):
    """[{name: {"passed", "detail"}}] for each (workspace, names) of `jobs`, in one child process
    that loads the framework once and forks one process per workspace (about 3 s of imports saved
    per workspace). For workspaces whose code is our own, the catalogue's edits: a forked workspace
    inherits the nonce and could write the report of another, so a candidate's workspace always
    goes through run_checks, a process of its own."""
    jobs = [(str(Path(workspace).resolve()), list(names)) for workspace, names in jobs]
    if not jobs:
        return []
    scratch = tempfile.mkdtemp(prefix="bugdrill-check-")
    nonce = secrets.token_hex(16)
    every_name = [name for _, names in jobs for name in names]
    argv, env, translate = child_command(jobs[0][0], scratch, every_name, ["--each", *data_envs()],
                                         readable=[w for w, _ in jobs[1:]])
    spec = json.dumps({"timeout": timeout, "jobs": [[translate(w), names] for w, names in jobs]})
    try:
        result = subprocess.run(argv, cwd=jobs[0][0], env=env, input=f"{nonce}\n{spec}\n", capture_output=True,
                                text=True, timeout=timeout * len(jobs) + 60)
    except subprocess.TimeoutExpired:
        return [{name: {"passed": False, "detail": "the checks ran out of time"} for name in names}
                for _, names in jobs]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    every = [f"{i}:{name}" for i, (_, names) in enumerate(jobs) for name in names]
    flat = read_report(result, nonce, every)
    return [{name: flat[f"{i}:{name}"] for name in names} for i, (_, names) in enumerate(jobs)]


def read_report(result, nonce, names):
    """The checks' results from the child's one report line; anything else fails them all."""
    reports = [line[len(nonce) + 1:] for line in result.stdout.splitlines() if line.startswith(nonce + " ")]
    try:
        report = json.loads(reports[0]) if len(reports) == 1 and result.returncode == 0 else None
    except ValueError:
        report = None
    if not isinstance(report, dict) or set(report) != set(names):
        why = result.stderr.strip()[-600:] or f"exit status {result.returncode}, no report"
        return {name: {"passed": False, "detail": f"check process failed: {why}"} for name in names}
    return {name: {"passed": report[name].get("passed") is True, "detail": str(report[name].get("detail", ""))[:600]}
            for name in names}
