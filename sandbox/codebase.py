"""Copying a codebase to a new place (whole, or its text files only), and telling whether a
codebase overlaps a directory it must stay apart from."""

import shutil
from pathlib import Path

# build outputs and run data never travel with a codebase (and each codebase names its own)
IGNORED_NAMES = ("__pycache__", ".git")


def ignored_names():
    from sandbox.codebases import registered

    return (*IGNORED_NAMES, *(name for codebase in registered() for name in codebase.build_outputs))


def copy_codebase(source, destination):
    """Copy a codebase's files into `destination`, which must not exist yet."""
    destination = Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*.pyc", *ignored_names()))
    return destination


def overlaps(path, directory):
    """Whether `path` is `directory`, lies inside it, or holds it (symlinks resolved): a codebase that
    overlaps the state directory would be copied with answer keys in it, or from one."""
    path, directory = Path(path).resolve(), Path(directory).resolve()
    return path == directory or directory in path.parents or path in directory.parents


def regular_files_copy(source, destination):
    """Copy the regular files of `source` (a workspace: untrusted) into `destination`, which must
    not exist: links and anything else are left out, so that no copy reads a file elsewhere."""
    source, destination = Path(source), Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    destination.mkdir(parents=True)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if ".git" in relative.parts or path.is_symlink() or not path.is_file():
            continue
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination / relative, follow_symlinks=False)
    return destination


def text_copy(checkout, destination):
    """Copy a checkout's text files (blind workspaces hold text only; a checkout's images are not
    code) into `destination`, which must not exist. Returns the files left out."""
    checkout, destination = Path(checkout), Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    skipped = []
    for path in sorted(checkout.rglob("*")):
        relative = path.relative_to(checkout)
        if not path.is_file() or any(part in (".git", "__pycache__") for part in relative.parts):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            skipped.append(relative.as_posix())
            continue
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        (destination / relative).write_text(text)
    return skipped
