"""Run behavioural checks against a workspace, in this (child) process:

    python -I -c 'import runpy, sys; sys.path.insert(0, sys.argv[1]); runpy.run_module(
        "bug_catalog.run_check", run_name="__main__")' FRAMEWORK_DIR WORKSPACE CHECK [CHECK ...]

with the workspace as the working directory, stdin carrying one line (the caller's nonce), and
the isolation of sandbox/jail.py around it where the machine allows.

The candidate's code is imported by the checks, so it is untrusted here:
* `-I`: no PYTHON* variables, no user site, neither the script's directory nor the working
  directory on sys.path; the check framework comes first on sys.path and the workspace LAST, so a
  workspace module named `bug_catalog`, `torch` or `json` is never the one imported;
* the framework and every check function are loaded, and the nonce read, before any workspace
  code runs: a workspace that replaces entries of the registry afterwards changes nothing here;
* one result line, `<nonce> <json>`, goes to stdout: {check: {"passed": bool, "detail": str}}.
  The caller decides the verdict from it and refuses a report without its nonce, with a check
  missing, or twice.
What this cannot stop is code in the workspace written to dig the nonce out of this process's
memory and forge the report; that is why a fix also has to make the scenario's run match the
pristine run, which the caller measures from the outside (server/interviews.py).

With `--each DATA_ENV ...` in place of WORKSPACE CHECK..., a second stdin line holds
{"timeout": s, "jobs": [[workspace, [check, ...]], ...]}: the framework is loaded once and each
workspace's checks run in a forked process of their own (its own working directory, its own
folder under each DATA_ENV, killed at the timeout), each reporting to this process through a
pipe; the report line's keys are "INDEX:CHECK". Only for workspaces of our own making
(bug_catalog/checking.run_checks_each says why).
"""

import json
import os
import signal
import sys
import traceback


def load_checks():
    import bug_catalog.targets  # noqa: F401  (the checks of other codebases, e.g. nanochat/...)
    from bug_catalog.catalog import import_bug_modules
    from bug_catalog.registry import CHECKS

    import_bug_modules()
    return dict(CHECKS)


def run_named(checks, names):
    """{name: {"passed", "detail"}}, each check run in turn on the workspace last on sys.path."""
    results = {name: {"passed": False, "detail": "no such check"} for name in names if name not in checks}
    for name in names:
        if name not in checks:
            continue
        try:
            checks[name]()
            results[name] = {"passed": True, "detail": ""}
        except Exception as error:  # the candidate's code may raise anything
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            results[name] = {"passed": False, "detail": detail[-600:]}
    return results


def main(argv):
    workspace, names = argv[0], argv[1:]
    nonce = sys.stdin.readline().strip()
    checks = load_checks()
    write, dumps, out = os.write, json.dumps, sys.stdout.fileno()
    sys.path.append(workspace)
    results = run_named(checks, names)
    sys.stdout.flush()
    write(out, f"\n{nonce} {dumps(results)}\n".encode())


def main_each(data_envs):
    nonce = sys.stdin.readline().strip()
    spec = json.loads(sys.stdin.readline())
    checks = load_checks()
    results = {}
    for index, (workspace, names) in enumerate(spec["jobs"]):
        for name, result in in_fork(checks, workspace, names, index, data_envs, spec["timeout"]).items():
            results[f"{index}:{name}"] = result
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), f"\n{nonce} {json.dumps(results)}\n".encode())


def in_fork(checks, workspace, names, index, data_envs, timeout):
    """run_named in a forked process working in `workspace`, its results read back through a pipe."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        signal.alarm(timeout)
        for name in data_envs:
            os.environ[name] = os.path.join(os.environ[name], str(index))
            os.makedirs(os.environ[name], exist_ok=True)
        os.chdir(workspace)
        sys.path.append(workspace)
        report = json.dumps(run_named(checks, names)).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(report)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        results = json.loads(report)
    except ValueError:
        results = None
    if not isinstance(results, dict) or set(results) != set(names):
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
            why = f"the checks took longer than {timeout} s"
        elif os.WIFSIGNALED(status):
            why = f"killed by signal {os.WTERMSIG(status)}, no report"
        else:
            why = f"exit status {os.WEXITSTATUS(status)}, no report"
        results = {name: {"passed": False, "detail": f"check process failed: {why}"} for name in names}
    return results


if __name__ == "__main__":
    arguments = sys.argv[2:]  # after -c's "-c" and the framework directory BOOT took
    if arguments[:1] == ["--each"]:
        main_each(arguments[1:])
    else:
        main(arguments)
