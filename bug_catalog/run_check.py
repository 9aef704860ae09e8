"""Run behavioural checks against a workspace, in this (child) process.

    python -m bug_catalog.run_check CHECK [CHECK ...]     (cwd = the workspace)

Prints one JSON object: {check: {"passed": bool, "detail": str}}. A check passes when it
returns; any exception (an assertion, or the candidate's code crashing) fails it.
"""

import json
import os
import sys
import traceback


def main(names):
    sys.path.insert(0, os.getcwd())
    import bug_catalog.targets  # noqa: F401  (the checks of other codebases, e.g. nanochat/...)
    from bug_catalog.catalog import import_bug_modules
    from bug_catalog.registry import CHECKS

    import_bug_modules()
    results = {}
    for name in names:
        try:
            CHECKS[name]()
            results[name] = {"passed": True, "detail": ""}
        except Exception as error:  # the candidate's code may raise anything
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            results[name] = {"passed": False, "detail": detail[-600:]}
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
