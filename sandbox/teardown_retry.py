"""Runs that a verdict or a measurement rests on, run again when gloo aborted a rank at teardown
(bug_catalog/teardown.py: about 1 in 90 two-rank CPU runs, after the run's work and output were
complete). Baselines, the runs that judge a fix, the validation matrix and synthesized-bug
measurements go through here; a candidate's own run_training is shown as it ended."""

from bug_catalog.teardown import ATTEMPTS, aborted_in_teardown
from sandbox import runner
from sandbox.runner import RunError

# torchrun writes a report of about 45 lines after the abort, so the abort is looked for further up
ABORT_SEARCH_LINES = 400


def stderr_texts(training, tail_lines):
    """The last lines of each stage's stderr (a stage whose log is gone is left out)."""
    for run_id in training.stages:
        try:
            yield runner.read_log(run_id, "stderr", tail_lines=tail_lines)
        except (RunError, OSError):
            continue


def failed_in_teardown(training):
    """A training that failed, with gloo's teardown abort in a stage's stderr."""
    return training.state == "failed" and any(aborted_in_teardown(text)
                                              for text in stderr_texts(training, ABORT_SEARCH_LINES))


def again_after_teardown_abort(run):
    """run() (a new Training each call), again while it failed in teardown, ATTEMPTS runs at most."""
    for _ in range(ATTEMPTS):
        training = run()
        if not failed_in_teardown(training):
            break
    return training
