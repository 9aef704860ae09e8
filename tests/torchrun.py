"""Running a multi-rank command in a test: gloo's CPU teardown aborts a rank now and then."""

import subprocess

# what the aborting rank prints; its work (and the run's output) is complete by then
TEARDOWN_ABORT = "terminate called without an active exception"
ATTEMPTS = 3


def run_ranks(command, on_retry=None, **kwargs):
    """subprocess.run(command, capture_output=True, text=True, **kwargs), run again (at most
    ATTEMPTS times) when a rank aborted in gloo's teardown on the CPU (SIGABRT after its last
    output). Measured here: 1 of about 90 two-rank runs of picochat on a 2-core machine under
    load; nothing a test checks makes a rank abort that way. on_retry() clears what a run left."""
    for attempt in range(1, ATTEMPTS + 1):
        result = subprocess.run(command, capture_output=True, text=True, **kwargs)
        if result.returncode == 0 or TEARDOWN_ABORT not in result.stderr or attempt == ATTEMPTS:
            return result
        if on_retry:
            on_retry()
