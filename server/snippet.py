"""The code-review snippet: 20-30 numbered lines of the bugged file that contain every changed line.

The window's length and offset are drawn once, when the interview starts, and stored with it, so
the bug is not always in the middle and asking again shows the same lines (no narrowing down by
asking twice). A change that spans more than one window's worth of lines gets one window per
cluster of changed lines. An interview with no bug (a control) gets a window of the same shape at a
random place in a file where bugs live, so the snippet does not give the control away.
"""

import random

from server import locate

MIN_LINES, MAX_LINES = 20, 30
MARGIN = 2  # lines kept between a changed line and the window's edge, where the file allows


def clusters(marks):
    """Changed lines grouped so that each group fits one window with its margins."""
    groups = []
    for mark in sorted(marks):
        if groups and mark - groups[-1][0] + 1 + 2 * MARGIN <= MAX_LINES:
            groups[-1].append(mark)
        else:
            groups.append([mark])
    return groups


def draw_window(total, marks, rng):
    """(first, last) line of a window over a file of `total` lines that contains all `marks`."""
    lo, hi = min(marks), max(marks)
    length = min(max(rng.randint(MIN_LINES, MAX_LINES), hi - lo + 1), total)
    for margin in (MARGIN, 0):
        first_min = max(1, hi + margin - length + 1)
        first_max = min(lo - margin, total - length + 1)
        if first_min <= first_max:
            first = rng.randint(first_min, first_max)
            return first, first + length - 1
    return 1, total


def plan(bugs, seed, home_files):
    """The windows of an interview, drawn once: [{"path", "first", "last"}], sorted by path and line.

    bugs: answer-key entries; home_files: {path: text} of files a control's window may fall in."""
    rng = random.Random(f"snippet:{seed}")
    windows = []
    for bug in bugs:
        total = len(locate.bugged_text(bug).splitlines())
        for group in clusters(locate.anchors(bug["diff"])):
            first, last = draw_window(total, group, rng)
            windows.append({"path": bug["file"], "first": first, "last": last})
    if not bugs and home_files:
        path = rng.choice(sorted(home_files))
        total = len(home_files[path].splitlines())
        windows.append(dict(zip(("first", "last"), draw_window(total, [rng.randint(1, total)], rng)), path=path))
    return merge(windows)


def merge(windows):
    """Overlapping windows of one file become one."""
    merged = []
    for window in sorted(windows, key=lambda w: (w["path"], w["first"])):
        last = merged[-1] if merged else None
        if last and last["path"] == window["path"] and window["first"] <= last["last"] + 1:
            last["last"] = max(last["last"], window["last"])
        else:
            merged.append(dict(window))
    return merged


def number_lines(lines, first):
    """Lines as an editor shows them: right-aligned line number, a bar, the code."""
    width = len(str(first + len(lines) - 1))
    return "\n".join(f"{first + i:>{width}} | {line}" for i, line in enumerate(lines))


def render(window, text):
    lines = text.splitlines()[window["first"] - 1:window["last"]]
    return number_lines(lines, window["first"])
