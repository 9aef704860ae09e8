"""Which lines of the checkout a process runs: a line tracer for pristine runs only.

`sitecustomize.py` installs it, before the script's first line, when BUGDRILL_PROBE_LINES is set
(bug_synth/reach.py sets it for the traced pristine run of a scenario; no other run has it). It
records every line executed in a file under the working directory (the checkout), in every
thread, and at exit writes `$BUGDRILL_PROBE_DIR/lines-{pid}.json`: {relative path: [lines]}.
Frames of any other file (torch, the standard library) get no line events, so the run slows by
the cost of one call per Python function call. A process that ends by os._exit (a forked worker)
writes nothing: its lines count as not run, which can only make a mutant look unreached, never
make an unreached one look run.
"""

import atexit
import json
import os
import sys
import threading


def install():
    root = os.getcwd().rstrip(os.sep) + os.sep
    seen = {}  # filename -> set of lines
    mine = {}  # code object -> whether its file is under root (asked once per code object)

    def local(frame, event, arg):
        if event == "line":
            seen[frame.f_code.co_filename].add(frame.f_lineno)
        return local

    def on_call(frame, event, arg):
        code = frame.f_code
        inside = mine.get(code)
        if inside is None:
            # "<frozen os>", "<string>": code with no file, which abspath would put under root
            inside = mine[code] = (not code.co_filename.startswith("<")
                                   and os.path.abspath(code.co_filename).startswith(root))
            if inside:
                seen.setdefault(code.co_filename, set())
        if not inside:
            return None
        seen[code.co_filename].add(frame.f_lineno)
        return local

    def write():
        sys.settrace(None)
        try:
            _dump(seen, root)
        except OSError:
            pass  # no file: the reach of this run is unknown, and an unknown reach skips nothing

    atexit.register(write)
    threading.settrace(on_call)
    sys.settrace(on_call)


def _dump(seen, root):
    lines = {}
    for filename, numbers in list(seen.items()):
        relative = os.path.relpath(os.path.abspath(filename), root)
        lines.setdefault(relative, set()).update(numbers)
    path = os.path.join(os.environ["BUGDRILL_PROBE_DIR"], f"lines-{os.getpid()}.json")
    with open(path, "w") as out:
        json.dump({name: sorted(numbers) for name, numbers in lines.items()}, out)
