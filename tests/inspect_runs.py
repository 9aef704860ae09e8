"""Running `inspect eval` as a user would, with no network where a namespace without one can be made."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from inspect_ai.log import read_eval_log

from bug_catalog.catalog import load_catalog

BIN = Path(sys.executable).parent


# brings the namespace's loopback up, then becomes the command: a 2-rank run's rendezvous (torchrun's
# TCP store on localhost) waits forever where even loopback is down
LOOPBACK_UP = """
import fcntl, os, socket, struct, sys
IFF_UP, SIOCGIFFLAGS, SIOCSIFFLAGS = 0x1, 0x8913, 0x8914
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
os.execvp(sys.argv[1], sys.argv[1:])
"""


def offline_prefix():
    """`unshare -n` (root) or `unshare -rn`: a network namespace with loopback alone, so nothing can be
    downloaded. Root keeps its own user namespace, in which the jail can still switch users."""
    for unshare in (["unshare", "-n"], ["unshare", "-rn"]):
        prefix = [*unshare, sys.executable, "-c", LOOPBACK_UP]
        if shutil.which("unshare") and subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return []


def inspect_eval(arguments, env, log_dir, timeout=1200):
    """The log of `inspect eval bugdrill/ml_debugging ARGUMENTS`, which must succeed."""
    command = [*offline_prefix(), str(BIN / "inspect"), "eval", "bugdrill/ml_debugging", *arguments,
               "--log-dir", str(log_dir), "--display", "plain"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (log_file,) = Path(log_dir).glob("*.eval")
    return log_file, read_eval_log(str(log_file))


def giveaways(sample, state_dir):
    """What the agent saw of the answer: its bugs' slugs, titles, explanations, hints it did not ask
    for, or the state directory's path, in the input, a tool result or its own calls."""
    records = [load_catalog()[b] for b in sample.metadata["bugs"]]
    asked_hints = any(c.function == "get_hint" for m in sample.messages if m.role == "assistant"
                      for c in m.tool_calls or [])
    secrets = [str(state_dir), *[r.slug for r in records], *[r.title for r in records],
               *[r.explanation.strip()[:60] for r in records]]
    if not asked_hints:
        secrets += [hint[:60] for r in records for hint in r.hints]
    seen = [sample.input if isinstance(sample.input, str) else json.dumps(sample.input)]
    seen += [m.text for m in sample.messages if m.role in ("user", "tool", "system")]
    seen += [json.dumps(c.arguments) for m in sample.messages if m.role == "assistant" for c in m.tool_calls or []]
    return [secret for text in seen for secret in secrets if secret in text]
