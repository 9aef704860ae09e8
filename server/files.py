"""Reading, searching and editing files of a workspace, confined to it.

A path is relative to the workspace root. Refused: absolute paths, `..`, anything under `.git`,
paths that resolve outside the workspace (a symlink pointing out), files that are not UTF-8 text
and files over MAX_FILE_BYTES. Every refusal is a FileAccessError whose message says what to do.

Searches run on RE2 (google-re2), not Python's backtracking `re`: a candidate's pattern such as
"(a+)+$" takes time exponential in the line's length there and would hold a server thread for
days. RE2 is linear in the text, refuses the constructs that need backtracking (backreferences,
lookaround) and releases the GIL while it matches, so other calls keep being answered; a search
that still runs past SEARCH_BUDGET_S (a huge workspace, a pattern RE2 runs slowly) gives up.
"""

import difflib
import re
import time
from pathlib import Path, PurePosixPath

import re2

MAX_FILE_BYTES = 1_000_000
MAX_READ_LINES = 400
MAX_LIST = 500
MAX_LINE_CHARS = 300
SEARCH_BUDGET_S = 10.0
SKIPPED_DIRS = {".git", "__pycache__"}


class FileAccessError(Exception):
    """A file operation the workspace does not allow, or that cannot be done as asked."""


def resolve(workspace, path, must_exist=True):
    """The real path of `path` inside the workspace, after every check."""
    root = Path(workspace).resolve()
    if not isinstance(path, str) or not path.strip() or "\0" in path:
        raise FileAccessError("give a path relative to the workspace root, e.g. scripts/base_train.py")
    pure = PurePosixPath(path.strip())
    if pure.is_absolute() or path.strip().startswith("~") or re.match(r"^[A-Za-z]:[\\/]", path.strip()):
        raise FileAccessError(f"{path!r} is absolute: give a path relative to the workspace root, "
                              "e.g. scripts/base_train.py")
    if ".." in pure.parts:
        raise FileAccessError(f"{path!r} contains '..': paths must stay inside the workspace")
    if ".git" in pure.parts:
        raise FileAccessError(f"{path!r} is inside .git, which the workspace tools do not open")
    try:
        real = (root / pure).resolve()
        if real != root and root not in real.parents:
            raise FileAccessError(f"{path!r} resolves outside the workspace (a symlink?): refused")
        if ".git" in real.relative_to(root).parts:
            raise FileAccessError(f"{path!r} leads into .git, which the workspace tools do not open")
        if must_exist and not real.exists():
            raise FileAccessError(f"{path!r} does not exist in the workspace; list_files shows what does")
    except OSError as error:
        raise FileAccessError(f"{path!r} cannot be used: {error.strerror}") from None
    except ValueError:  # characters the file system cannot encode
        raise FileAccessError(f"{path!r} is not a usable file name") from None
    return real


def relative(workspace, real):
    return real.relative_to(Path(workspace).resolve()).as_posix() or "."


def read_text(real, shown):
    if real.is_dir():
        raise FileAccessError(f"{shown!r} is a directory; list_files shows its files")
    size = real.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FileAccessError(f"{shown!r} is {size:,} bytes; only text files up to {MAX_FILE_BYTES:,} bytes are served")
    data = real.read_bytes()
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "NUL byte")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileAccessError(f"{shown!r} is not a text file") from None


def walk(workspace, real):
    """Files under a directory (or the file itself), sorted, skipping .git, caches and symlinks out."""
    if real.is_file():
        return [real]
    root = Path(workspace).resolve()
    found = []
    for path in sorted(real.rglob("*")):
        if any(part in SKIPPED_DIRS for part in path.relative_to(root).parts) or not path.is_file():
            continue
        target = path.resolve()
        if root not in target.parents or ".git" in target.relative_to(root).parts:
            continue
        found.append(path)
    return found


def list_files(workspace, path="."):
    real = resolve(workspace, path)
    files = [relative(workspace, p) for p in walk(workspace, real)]
    return files[:MAX_LIST], len(files) > MAX_LIST


def read(workspace, path, start_line=None, end_line=None):
    """(relative path, lines, first line number, total lines, truncated) of a file or a range of it."""
    real = resolve(workspace, path)
    lines = read_text(real, path).splitlines()
    total = len(lines)
    first = start_line or 1
    if total == 0:
        return relative(workspace, real), [], 1, 0, False
    if first > total:
        raise FileAccessError(f"{path!r} has {total} lines; start_line {first} is past its end")
    last = min(end_line or total, total)
    if last < first:
        raise FileAccessError(f"end_line {end_line} is before start_line {first}")
    truncated = last - first + 1 > MAX_READ_LINES
    if truncated:
        last = first + MAX_READ_LINES - 1
    return relative(workspace, real), lines[first - 1:last], first, total, truncated


def compile_pattern(pattern, regex, case_sensitive):
    """The RE2 matcher of a search, or a FileAccessError saying why the pattern cannot be run."""
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.literal = not regex
    options.log_errors = False  # a refused pattern is the caller's to fix, not a server error to log
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else "refused"
    if isinstance(reason, bytes):  # the binding hands RE2's own message over as bytes
        reason = reason.decode(errors="replace")
    if _python_accepts(pattern):
        raise FileAccessError(
            f"search_code runs regular expressions on RE2, a linear-time engine (so that no pattern can stall "
            f"the server), and RE2 refused this one: {reason}. RE2 has no backreferences (\\1, (?P=name)), no "
            "lookaround ((?=, (?!, (?<=, (?<!), no atomic groups or possessive quantifiers, and counts to 1000 at "
            "most. Rewrite the pattern without them, or pass regex=false to search for the text literally") from None
    raise FileAccessError(f"invalid regular expression: {reason}; pass regex=false to search literally") from None


def _python_accepts(pattern):
    """Whether Python's `re` accepts a pattern RE2 refused: then it used what RE2 leaves out, not bad syntax."""
    try:
        re.compile(pattern)  # compiling is cheap and bounded; only matching backtracks
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def search(workspace, pattern, regex=False, path=".", case_sensitive=True, max_results=50):
    """([(path, line number, line)], truncated, files searched) for a regex or a literal string."""
    if not pattern:
        raise FileAccessError("give a non-empty pattern")
    compiled = compile_pattern(pattern, regex, case_sensitive)
    real = resolve(workspace, path)
    deadline = time.monotonic() + SEARCH_BUDGET_S
    matches, searched = [], 0
    for file in walk(workspace, real):
        try:
            text = read_text(file, relative(workspace, file))
        except FileAccessError:
            continue
        searched += 1
        for number, line in enumerate(text.splitlines(), 1):
            if time.monotonic() > deadline:
                raise FileAccessError(f"the search gave up after {SEARCH_BUDGET_S:g} s ({searched} file(s) "
                                      "searched): give a path to search a smaller part of the workspace, or a "
                                      "simpler pattern")
            if compiled.search(line):
                if len(matches) == max_results:
                    return matches, True, searched
                matches.append((relative(workspace, file), number, line[:MAX_LINE_CHARS]))
    return matches, False, searched


def _diff(path, before, after):
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{path}", f"b/{path}"))


def replace(workspace, path, old_text, new_text):
    """Replace the one occurrence of old_text; returns (relative path, unified diff)."""
    real = resolve(workspace, path)
    before = read_text(real, path)
    count = before.count(old_text) if old_text else 0
    if not old_text:
        raise FileAccessError("old_text is empty: give the exact text to replace, or pass content to write the whole file")
    if count == 0:
        raise FileAccessError(f"old_text was not found in {path!r}: read the file again and copy the text exactly, "
                              "whitespace and indentation included")
    if count > 1:
        raise FileAccessError(f"old_text occurs {count} times in {path!r}: include more surrounding lines so that "
                              "it matches exactly once")
    after = before.replace(old_text, new_text, 1)
    _write(real, after)
    return relative(workspace, real), _diff(relative(workspace, real), before, after)


def write(workspace, path, content):
    """Write a whole file (new or existing); returns (relative path, unified diff, created)."""
    real = resolve(workspace, path, must_exist=False)
    if len(content.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise FileAccessError(f"content is over {MAX_FILE_BYTES:,} bytes")
    if "\0" in content:
        raise FileAccessError("content contains a NUL byte: only text files can be written")
    created = not real.exists()
    before = "" if created else read_text(real, path)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FileAccessError(f"cannot create the folder for {path!r}: {error.strerror}") from None
    _write(real, content)
    return relative(workspace, real), _diff(relative(workspace, real), before, content), created


def _write(real, text):
    try:
        real.write_bytes(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise FileAccessError("the text is not valid Unicode (lone surrogate characters)") from None
    except OSError as error:
        raise FileAccessError(f"cannot write: {error.strerror}") from None
