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
"""

import json
import os
import sys
import traceback


def main(argv):
    workspace, names = argv[0], argv[1:]
    nonce = sys.stdin.readline().strip()
    import bug_catalog.targets  # noqa: F401  (the checks of other codebases, e.g. nanochat/...)
    from bug_catalog.catalog import import_bug_modules
    from bug_catalog.registry import CHECKS

    import_bug_modules()
    unknown = [name for name in names if name not in CHECKS]
    chosen = {name: CHECKS[name] for name in names if name in CHECKS}
    write, dumps, out = os.write, json.dumps, sys.stdout.fileno()
    sys.path.append(workspace)
    results = {name: {"passed": False, "detail": "no such check"} for name in unknown}
    for name, check in chosen.items():
        try:
            check()
            results[name] = {"passed": True, "detail": ""}
        except Exception as error:  # the candidate's code may raise anything
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            results[name] = {"passed": False, "detail": detail[-600:]}
    sys.stdout.flush()
    write(out, f"\n{nonce} {dumps(results)}\n".encode())


if __name__ == "__main__":
    main(sys.argv[2:])  # after -c's "-c" and the framework directory BOOT took
