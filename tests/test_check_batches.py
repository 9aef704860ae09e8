"""bug_catalog.checking.run_checks_each: one child loads the check framework, each workspace's
checks run in a forked process of their own; a workspace that dies, hangs or names no check
costs only its own results."""

from bug_catalog.checking import run_checks_each
from sandbox.codebase import copy_codebase
from sandbox.codebases.picochat import PICOCHAT_DIR


def copy_with_model_start(path, first_line):
    copy_codebase(PICOCHAT_DIR, path)
    model = path / "picochat" / "gpt.py"
    if first_line:
        model.write_text(first_line + "\n" + model.read_text())
    return path


def test_each_workspace_is_judged_alone_in_one_batch(tmp_path):
    dies = copy_with_model_start(tmp_path / "dies", "import os; os._exit(7)")
    hangs = copy_with_model_start(tmp_path / "hangs", "while True: pass")
    pristine = copy_with_model_start(tmp_path / "pristine", None)
    results = run_checks_each([(dies, ["zero-grad"]), (hangs, ["zero-grad"]), (pristine, ["zero-grad", "no-such"])],
                              timeout=20)
    assert results[0] == {"zero-grad": {"passed": False, "detail": "check process failed: exit status 7, no report"}}
    assert results[1] == {"zero-grad": {"passed": False, "detail": "check process failed: the checks took longer "
                                                                   "than 20 s"}}
    assert results[2] == {"zero-grad": {"passed": True, "detail": ""},
                          "no-such": {"passed": False, "detail": "no such check"}}
