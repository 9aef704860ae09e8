"""The built-in practice codebase (picochat) and copying a codebase to a new place."""

import shutil
from pathlib import Path

PICOCHAT_DIR = Path(__file__).parent / "templates" / "picochat"

# build outputs and run data never travel with a codebase
IGNORED_NAMES = ("__pycache__", ".picochat", ".git")
IGNORED = shutil.ignore_patterns("*.pyc", *IGNORED_NAMES)


def copy_codebase(source, destination):
    """Copy a codebase's files into `destination`, which must not exist yet."""
    destination = Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    shutil.copytree(source, destination, ignore=IGNORED)
    return destination
