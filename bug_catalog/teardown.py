"""gloo's teardown abort on the CPU: now and then a rank of a 2-rank run aborts (SIGABRT) while
the process group is torn down after its last output. Measured: about 1 in 90 two-rank runs of
picochat on a loaded 2-core machine; its work and output were complete, and no bug in the
catalogue makes a rank abort that way. Checks run such a run again (at most ATTEMPTS times), and
so do baselines and every run a verdict or a measurement rests on (sandbox/teardown_retry.py); a
candidate's own run is shown as it ended."""

TEARDOWN_ABORT = "terminate called without an active exception"
ATTEMPTS = 3


def aborted_in_teardown(stderr_text):
    return TEARDOWN_ABORT in stderr_text
