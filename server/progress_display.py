"""Run progress as the command line shows it: one updating bar on a terminal, plain lines elsewhere.

A run's progress comes as a stream of (done, total, message) reports (MCP progress notifications
in `bugdrill demo`, the runner's polls in `bugdrill train --codebase`), many of them repeating the
last one. On a terminal they move one progress bar (rich's, which the `eval` extra installs with
inspect_ai); on a pipe or a file, where a bar would be a pile of escape codes, or without rich,
a plain line when a stage starts or ends and at each further tenth of it, never the same line
twice: a 100-step run on a slow machine is a dozen lines, not a hundred.
"""

import importlib.util
import sys


class RunProgress:
    """Use as a context manager around one run; call `update` with every report. Nothing is shown
    before the first report (a cached baseline reports nothing)."""

    def __init__(self, stream=None, indent="    "):
        self.stream = stream or sys.stdout
        self.indent = indent
        self.live = self.stream.isatty() and importlib.util.find_spec("rich") is not None
        self.last_message = None
        self.printed = None  # (done, total) of the last plain line
        self.bar = None
        self.task = None

    def __enter__(self):
        return self

    def update(self, done, total, message):
        done = done or 0
        if self.live:
            if self.bar is None:
                self.start_bar()
            # an unknown total (None) makes the bar pulse instead of filling
            self.bar.update(self.task, completed=done, total=total, description=message)
        elif message != self.last_message and self.worth_a_line(done, total):
            print(f"{self.indent}{message}", file=self.stream, flush=True)
            self.printed = (done, total)
            self.last_message = message

    def worth_a_line(self, done, total):
        """Off a terminal: a line when a stage starts or ends, and at each further tenth of it."""
        if self.printed is None or not total:
            return True
        last_done, last_total = self.printed
        if total != last_total or done < last_done or done >= total:
            return True  # a new stage, or the end of this one
        return done * 10 // total > last_done * 10 // total

    def start_bar(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(self.indent + "{task.description}"), BarColumn(), TimeElapsedColumn(),
                            console=Console(file=self.stream))
        self.bar.start()
        self.task = self.bar.add_task("", total=None)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()  # the bar stays on screen as the run's last state
        return False
