"""A server that is not root runs workspace code in the user-namespace jail (sandbox/jail.py),
end to end: here root makes such a host in a mount namespace of its own (its home, where this
interpreter may lie, made traversable with the interpreter alone inside) and plays an interview
as an unprivileged user (tests/fixtures/nonroot_interview.py). The candidate's spy, trained
through run_training, must find no answer key, no state-directory path, no bugdrill package and
no other process."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
SCRIPT = REPO / "tests" / "fixtures" / "nonroot_interview.py"

# as root, in a private mount namespace: the interpreter's prefix is moved aside, a tmpfs covers
# root's home (mode 0700 here), the prefix goes back at its own path, then the user is switched
HOST = """
set -e
prefix="$1"; shift
stage=$(mktemp -d)
mount --bind "$prefix" "$stage"
mount -t tmpfs -o mode=755 tmpfs /root
mkdir -p "$prefix"
mount --move "$stage" "$prefix"
exec setpriv --reuid=%(uid)d --regid=%(uid)d --clear-groups --inh-caps=-all -- "$@"
"""


def nonroot_host_possible():
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "setpriv")):
        return "needs root with unshare and setpriv to make a host where the server is another user"
    return None


@pytest.mark.skipif(nonroot_host_possible() is not None, reason=str(nonroot_host_possible()))
def test_a_server_that_is_not_root_runs_workspace_code_in_the_user_namespace_jail():
    state = Path(tempfile.mkdtemp(prefix="bugdrill-nonroot-"))
    try:
        os.chown(state, NOBODY, NOBODY)
        # BUGDRILL_ISOLATION=off here shows the spy reaching the key files and every process
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(state), "BUGDRILL_STATE_DIR": str(state / "state"),
               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
        if os.environ.get("BUGDRILL_BASELINE_CACHE"):
            env["BUGDRILL_BASELINE_CACHE"] = str(state / "baseline-cache")  # the suite's cache is root's
        command = ["unshare", "--mount", "--propagation", "private", "--", "bash", "-c", HOST % {"uid": NOBODY},
                   "host", sys.base_prefix, sys.executable, str(SCRIPT), str(REPO)]
        done = subprocess.run(command, env=env, cwd=state, capture_output=True, text=True, timeout=600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
        result = json.loads(lines[0][len("RESULT "):])
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert result["server_uid"] == NOBODY
    assert result["isolation"] == "isolated (user namespace)", result
    assert result["run"] == "finished", result
    spy = result["spy"]
    # root of its user namespace (the server's uid outside it) without a capability: kept away from the
    # server's files by the mounts alone
    assert spy["capabilities"] == 0, spy
    assert spy["keys"] == [] and not spy["state_in_env"] and not spy["repo"], spy
    assert spy["pids"] and all(int(p) < 100 for p in spy["pids"]), "another process is visible"
