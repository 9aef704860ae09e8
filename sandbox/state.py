"""The state directory: answer keys (and later sessions and runs) live here, never in a workspace.

$BUGDRILL_STATE_DIR when set, else the user's data directory (platformdirs)."""

import hashlib
import os
from pathlib import Path

import platformdirs


def state_dir():
    path = Path(os.environ.get("BUGDRILL_STATE_DIR") or platformdirs.user_data_dir("bugdrill"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def answer_key_path(workspace):
    """Where the answer key of a workspace is kept: named by a hash of its real path, so the
    name says nothing about the bug."""
    digest = hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:20]
    return state_dir() / "keys" / f"{digest}.json"
