"""The built-in practice codebase (picochat), copying a codebase to a new place, and telling whether a
codebase overlaps a directory it must stay apart from."""

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


def overlaps(path, directory):
    """Whether `path` is `directory`, lies inside it, or holds it (symlinks resolved): a codebase that
    overlaps the state directory would be copied with answer keys in it, or from one."""
    path, directory = Path(path).resolve(), Path(directory).resolve()
    return path == directory or directory in path.parents or path in directory.parents
